// The bench profiler (src/core/profiler.h): nothing is recorded while it is
// off, a nested timed scope is not counted twice, time goes to the section
// the calling thread is in, and a scope's time covers the work inside it.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/profiler.h"

namespace {

using namespace tandem::prof;

uint64_t ns_of(const Counters& c, Op o, Section s) { return c.ns[static_cast<int>(o)][static_cast<int>(s)]; }
uint64_t calls_of(const Counters& c, Op o, Section s) {
  return c.calls[static_cast<int>(o)][static_cast<int>(s)];
}

void timed_sleep(Op op, int ms) {
  ScopedOp t(op);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

TEST(Profiler, OffRecordsNothing) {
  set_enabled(false);
  reset();
  timed_sleep(Op::kMatmul, 1);
  const Counters c = snapshot();
  for (int o = 0; o < kNumOps; ++o)
    for (int s = 0; s < kNumSections; ++s) EXPECT_EQ(c.calls[o][s], 0u);
}

TEST(Profiler, SectionsAndNesting) {
  reset();
  set_enabled(true);
  {
    TANDEM_PROF_SECTION(kFfn);
    timed_sleep(Op::kMatmul, 5);
    {
      TANDEM_PROF_SECTION(kAttention);
      TANDEM_PROF_OP(kAttention);
      timed_sleep(Op::kMatmul, 5);  // nested in the attention scope: not counted on its own
    }
  }
  timed_sleep(Op::kNorm, 1);  // back in the default section
  set_enabled(false);
  const Counters c = snapshot();
  EXPECT_EQ(calls_of(c, Op::kMatmul, Section::kFfn), 1u);
  EXPECT_GE(ns_of(c, Op::kMatmul, Section::kFfn), 5'000'000u);
  EXPECT_EQ(calls_of(c, Op::kMatmul, Section::kAttention), 0u);
  EXPECT_EQ(calls_of(c, Op::kAttention, Section::kAttention), 1u);
  EXPECT_GE(ns_of(c, Op::kAttention, Section::kAttention), 5'000'000u);  // includes the nested work
  EXPECT_EQ(calls_of(c, Op::kNorm, Section::kOther), 1u);
  reset();
  EXPECT_EQ(snapshot().calls[static_cast<int>(Op::kNorm)][0], 0u);
}

// Turning profiling on inside an open scope must not unbalance the nesting.
TEST(Profiler, EnableInsideScopeStaysBalanced) {
  reset();
  set_enabled(false);
  {
    ScopedOp outer(Op::kConv);
    set_enabled(true);
  }
  timed_sleep(Op::kRope, 1);
  set_enabled(false);
  EXPECT_EQ(calls_of(snapshot(), Op::kRope, Section::kOther), 1u);
}

}  // namespace
