// Counters of the per-op-kind profiler (see profiler.h). Relaxed atomics: the
// totals are read after the timed work is over, and several contexts on
// different threads may record at once.
#include "core/profiler.h"

namespace tandem::prof {

namespace detail {
std::atomic<bool> g_enabled{false};

namespace {
std::array<std::array<std::atomic<uint64_t>, kNumSections>, kNumOps> g_ns{};
std::array<std::array<std::atomic<uint64_t>, kNumSections>, kNumOps> g_calls{};
}  // namespace

void record(Op op, Section s, uint64_t ns) {
  const auto o = static_cast<size_t>(op), c = static_cast<size_t>(s);
  g_ns[o][c].fetch_add(ns, std::memory_order_relaxed);
  g_calls[o][c].fetch_add(1, std::memory_order_relaxed);
}
}  // namespace detail

const char* op_name(Op op) {
  switch (op) {
    case Op::kMatmul: return "matmul";
    case Op::kAttention: return "attention core";
    case Op::kConv: return "conv";
    case Op::kSsmScan: return "ssm scan";
    case Op::kNorm: return "norms";
    case Op::kRope: return "rope";
    case Op::kEmbed: return "embedding";
    case Op::kSampling: return "sampling";
    case Op::kCount: break;
  }
  return "?";
}

const char* section_name(Section s) {
  switch (s) {
    case Section::kOther: return "other";
    case Section::kAttention: return "attention";
    case Section::kRecurrent: return "recurrent";
    case Section::kFfn: return "ffn";
    case Section::kMoe: return "moe";
    case Section::kLmHead: return "lm_head";
    case Section::kCount: break;
  }
  return "?";
}

void set_enabled(bool on) { detail::g_enabled.store(on, std::memory_order_relaxed); }

void reset() {
  for (auto& row : detail::g_ns)
    for (auto& v : row) v.store(0, std::memory_order_relaxed);
  for (auto& row : detail::g_calls)
    for (auto& v : row) v.store(0, std::memory_order_relaxed);
}

Counters snapshot() {
  Counters c;
  for (int o = 0; o < kNumOps; ++o)
    for (int s = 0; s < kNumSections; ++s) {
      c.ns[o][s] = detail::g_ns[o][s].load(std::memory_order_relaxed);
      c.calls[o][s] = detail::g_calls[o][s].load(std::memory_order_relaxed);
    }
  return c;
}

}  // namespace tandem::prof
