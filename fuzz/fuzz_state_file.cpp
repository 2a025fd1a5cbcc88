// libFuzzer target for the memory state-file loader (whole memory and one
// sequence), fed with in-memory bytes. Properties checked besides "no crash":
//  * a refused input leaves memory exactly as it was (serialize is unchanged);
//  * an accepted whole-memory input round-trips: serialize(load(x)) loads
//    again and serializes to the same bytes.
// Seeds in fuzz/corpus/state_file/ were written by this configuration
// (kFingerprint, fuzz_specs(), fuzz_options()).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <vector>

#include "memory/hybrid_memory.h"

namespace {

using namespace tandem;
using namespace tandem::memory;

constexpr const char* kFingerprint = "fuzz-model";

std::vector<LayerSpec> fuzz_specs() {
  LayerSpec rec;
  rec.kind = LayerKind::kRecurrent;
  rec.rec = RecurrentSpec{3, 3, 1, 2, 2};
  LayerSpec attn;
  attn.kind = LayerKind::kAttention;
  attn.attn.n_kv_heads = 1;
  attn.attn.head_dim_k = 2;
  attn.attn.head_dim_v = 2;
  LayerSpec both = attn;
  both.kind = LayerKind::kBoth;
  both.rec = rec.rec;
  return {rec, attn, both};
}

MemoryOptions fuzz_options() {
  MemoryOptions o;
  o.n_ctx = 16;
  o.n_seq_max = 3;
  o.n_ubatch = 4;
  o.kv_type = DType::F16;
  o.snapshot_slots = 2;
  return o;
}

void check(bool ok) {
  if (!ok) std::abort();
}

// A memory with some content, so "unchanged" is a meaningful check.
std::unique_ptr<HybridMemory> seeded_memory() {
  auto m = HybridMemory::create(fuzz_specs(), fuzz_options());
  check(m.is_ok());
  auto& mem = **m;
  Batch b;
  b.tokens = {1, 2, 3};
  b.pos = {0, 1, 2};
  b.seq = {{0}, {0}, {0}};
  b.output = {0, 0, 1};
  auto plan = mem.plan(b);
  check(plan.is_ok());
  for (int i = 0; i < plan->n_ubatch(); ++i) check(mem.apply(*plan, i).is_ok());
  mem.commit(*plan);
  check(mem.snapshot(0).is_ok());
  return std::move(*m);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  {
    auto mem = seeded_memory();
    const auto before = *mem->serialize(kFingerprint);
    Status st = mem->deserialize(in, kFingerprint);
    if (!st) {
      check(*mem->serialize(kFingerprint) == before);
    } else {
      auto again = mem->serialize(kFingerprint);
      check(again.is_ok());
      auto other = HybridMemory::create(fuzz_specs(), fuzz_options());
      check(other.is_ok());
      check((*other)->deserialize(*again, kFingerprint).is_ok());
      check(*(*other)->serialize(kFingerprint) == *again);
    }
  }
  {
    auto mem = seeded_memory();
    const auto before = *mem->serialize(kFingerprint);
    Status st = mem->deserialize_seq(in, 1, kFingerprint);
    if (!st) check(*mem->serialize(kFingerprint) == before);
    else check(mem->serialize(kFingerprint).is_ok() && mem->serialize_seq(1, kFingerprint).is_ok());
  }
  return 0;
}
