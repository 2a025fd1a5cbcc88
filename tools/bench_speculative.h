#pragma once
// Speculative-decoding test kinds of `tandem bench --draft-model M | --lookup N`:
//   tgN greedy  N tokens of greedy generation after a fixed text prompt, one
//               target decode call per token (the baseline);
//   tgN spec    the same N tokens through runtime::SpeculativeDecoder (draft,
//               verify K in one call, accept, roll back).
// Both generate the same text (asserted every repetition), so tokens/s of the
// two rows compare directly; the spec row also reports acceptance.
#include <memory>
#include <string>
#include <vector>

#include "bench_tests.h"
#include "runtime/speculative.h"

namespace tandem::tools::bench {

// Shared between the pair: the baseline's tokens (to check the spec run) and
// the spec run's statistics (of its last repetition).
struct SpecBenchShared {
  std::vector<int32_t> baseline;
  runtime::SpeculativeStats last;
};

std::unique_ptr<BenchTest> make_greedy_gen_test(int n_gen, std::vector<int32_t> prompt,
                                                std::shared_ptr<SpecBenchShared> shared);
// `drafter` must outlive the test.
std::unique_ptr<BenchTest> make_spec_gen_test(int n_gen, std::vector<int32_t> prompt, runtime::Drafter* drafter,
                                              int draft_max, std::shared_ptr<SpecBenchShared> shared);

}  // namespace tandem::tools::bench
