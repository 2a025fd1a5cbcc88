// `tandem inspect --memory` (see inspect_memory.h).
#include "inspect_memory.h"

#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "format_bytes.h"
#include "memory/hybrid_memory.h"
#include "model/model.h"

namespace tandem::tools {

int print_memory(const MemoryQuery& q) {
  constexpr const char* kCmd = "tandem inspect";
  auto m = model::Model::load(q.path);
  if (!m) {
    std::fprintf(stderr, "%s: error: %s\n", kCmd, m.status().message().c_str());
    return 1;
  }
  const auto& specs = (*m)->layer_specs();
  memory::MemoryOptions mo;
  const int n_ctx_train = (*m)->config().n_ctx_train;
  mo.n_ctx = q.n_ctx > 0 ? q.n_ctx : (n_ctx_train > 0 ? n_ctx_train : 4096);  // as Context::create
  mo.n_seq_max = q.n_parallel;
  mo.kv_type = q.kv_type == "f32" ? DType::F32 : DType::F16;
  mo.snapshot_slots = q.snapshot_slots;
  mo.state_type = q.state_type == "bf16" ? DType::BF16 : DType::F32;
  auto est = memory::HybridMemory::estimate(specs, mo);
  if (!est) {
    std::fprintf(stderr, "%s: error: %s: %s\n", kCmd, q.path.c_str(), est.status().message().c_str());
    return 1;
  }
  int n_attn = 0, n_rec = 0;
  for (const auto& s : specs) {
    n_attn += memory::has_attention(s.kind) ? 1 : 0;
    n_rec += memory::has_recurrent(s.kind) ? 1 : 0;
  }
  const memory::MemoryBytes& b = *est;
  const size_t cell = b.attention / static_cast<size_t>(mo.n_ctx);      // K+V of one token, all attention layers
  const size_t slot = b.recurrent / static_cast<size_t>(mo.n_seq_max);  // one sequence's state, all recurrent layers
  // A sequence owns its recurrent slot; the attention cells are a pool shared
  // by all sequences, so its attention share is what it fills: up to n_ctx cells.
  const size_t per_seq_full = slot + b.attention;
  if (q.json) {
    nlohmann::ordered_json j;
    j["model"] = q.path;
    j["n_ctx"] = mo.n_ctx;
    j["n_parallel"] = mo.n_seq_max;
    j["kv_type"] = q.kv_type;
    j["state_type"] = q.state_type;
    j["snapshot_slots"] = mo.snapshot_slots;
    j["attention_layers"] = n_attn;
    j["recurrent_layers"] = n_rec;
    j["attention_bytes"] = b.attention;
    j["attention_bytes_per_token"] = cell;
    j["recurrent_bytes"] = b.recurrent;
    j["recurrent_bytes_per_sequence"] = slot;
    j["snapshot_bytes"] = b.snapshots;
    j["metadata_bytes"] = b.metadata;
    j["total_bytes"] = b.total();
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("memory of %s with --ctx %d --parallel %d, kv %s, state %s, %d snapshot slots:\n", q.path.c_str(),
              mo.n_ctx, mo.n_seq_max, q.kv_type.c_str(), q.state_type.c_str(), mo.snapshot_slots);
  std::printf("  attention store   %14zu bytes (%s): %d cells x %zu bytes per token over %d attention layers\n",
              b.attention, format_mib(b.attention).c_str(), mo.n_ctx, cell, n_attn);
  std::printf("  recurrent state   %14zu bytes (%s): %d sequences x %zu bytes over %d recurrent layers\n",
              b.recurrent, format_mib(b.recurrent).c_str(), mo.n_seq_max, slot, n_rec);
  std::printf("  snapshots         %14zu bytes (%s)\n", b.snapshots, format_mib(b.snapshots).c_str());
  std::printf("  bookkeeping       %14zu bytes (%s)\n", b.metadata, format_mib(b.metadata).c_str());
  std::printf("  per sequence      %14zu bytes recurrent (constant) + %zu bytes per token it holds "
              "(at most %zu bytes with the whole context)\n",
              slot, cell, per_seq_full);
  std::printf("  total             %14zu bytes (%s)\n", b.total(), format_mib(b.total()).c_str());
  return 0;
}

}  // namespace tandem::tools
