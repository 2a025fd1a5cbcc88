#pragma once
// A tiny per-op-kind profiler for `tandem bench --profile`.
//
// Kernel entry points open one `TANDEM_PROF_OP(kind)` scope; the model's layer
// code tags what it is computing with `TANDEM_PROF_SECTION(section)` so matmul
// time can be split by layer part (attention / recurrent / ffn / moe / lm_head).
// Disabled (the default) a scope costs one relaxed atomic load. Enabled, the
// outermost scope on the calling thread measures wall time with steady_clock;
// nested scopes (a kernel calling another entry point) are not counted twice.
// Work the kernel hands to pool threads is included in the calling thread's
// wall time, which is what a per-token breakdown needs.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace tandem::prof {

enum class Op : uint8_t {
  kMatmul, kAttention, kConv, kSsmScan, kNorm, kRope, kEmbed, kSampling, kCount
};
enum class Section : uint8_t { kOther, kAttention, kRecurrent, kFfn, kMoe, kLmHead, kCount };

inline constexpr int kNumOps = static_cast<int>(Op::kCount);
inline constexpr int kNumSections = static_cast<int>(Section::kCount);

const char* op_name(Op op);            // "matmul", "attention", ...
const char* section_name(Section s);   // "other", "attention", ...

// Accumulated nanoseconds and call counts per (op, section).
struct Counters {
  std::array<std::array<uint64_t, kNumSections>, kNumOps> ns{};
  std::array<std::array<uint64_t, kNumSections>, kNumOps> calls{};
};

namespace detail {
extern std::atomic<bool> g_enabled;
// Defined here (inline) rather than `extern` in profiler.cpp: an extern
// thread_local read from another translation unit goes through GCC's TLS
// wrapper, which UBSan reported as a null store in a test binary that linked
// no other symbol of profiler.cpp.
inline thread_local Section t_section = Section::kOther;
inline thread_local int t_depth = 0;
void record(Op op, Section s, uint64_t ns);
}  // namespace detail

inline bool enabled() { return detail::g_enabled.load(std::memory_order_relaxed); }
void set_enabled(bool on);
void reset();          // zero all counters
Counters snapshot();   // a copy of the counters

class ScopedOp {
 public:
  explicit ScopedOp(Op op) : op_(op) {
    if (!enabled()) return;
    counted_ = true;
    if (detail::t_depth++ > 0) return;  // nested in another timed kernel
    active_ = true;
    t0_ = std::chrono::steady_clock::now();
  }
  ~ScopedOp() {
    if (!counted_) return;
    --detail::t_depth;
    if (!active_) return;
    const auto dt = std::chrono::steady_clock::now() - t0_;
    detail::record(op_, detail::t_section,
                   static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(dt).count()));
  }
  ScopedOp(const ScopedOp&) = delete;
  ScopedOp& operator=(const ScopedOp&) = delete;

 private:
  Op op_;
  bool counted_ = false, active_ = false;
  std::chrono::steady_clock::time_point t0_{};
};

// Sets the calling thread's current section for its lifetime (cheap: a
// thread_local store, done whether or not profiling is on).
class ScopedSection {
 public:
  explicit ScopedSection(Section s) : prev_(detail::t_section) { detail::t_section = s; }
  ~ScopedSection() { detail::t_section = prev_; }
  ScopedSection(const ScopedSection&) = delete;
  ScopedSection& operator=(const ScopedSection&) = delete;

 private:
  Section prev_;
};

}  // namespace tandem::prof

#define TANDEM_PROF_CAT2(a, b) a##b
#define TANDEM_PROF_CAT(a, b) TANDEM_PROF_CAT2(a, b)
#define TANDEM_PROF_OP(kind) \
  ::tandem::prof::ScopedOp TANDEM_PROF_CAT(tandem_prof_op_, __LINE__)(::tandem::prof::Op::kind)
#define TANDEM_PROF_SECTION(s) \
  ::tandem::prof::ScopedSection TANDEM_PROF_CAT(tandem_prof_sec_, __LINE__)(::tandem::prof::Section::s)
