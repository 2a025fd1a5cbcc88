#pragma once
// Test kinds of `tandem bench`. Each kind knows how to run one repetition from
// empty memory on a Context; cmd_bench.cpp owns the timing, repetitions,
// statistics and output. A new kind (e.g. speculative decoding with a draft
// model) is one more BenchTest subclass plus one factory call in cmd_bench.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tandem/tandem.h"

namespace tandem::tools::bench {

class BenchTest {
 public:
  virtual ~BenchTest() = default;
  // Short label as llama-bench prints it: "pp512", "tg128", "tg128 x4".
  virtual std::string name() const = 0;
  virtual std::string kind() const = 0;   // "pp", "tg", "tg_parallel", ...
  virtual int n_prompt() const { return 0; }
  virtual int n_gen() const { return 0; }
  virtual int n_parallel() const { return 1; }
  // Sequences and attention cells the Context must have.
  virtual int n_seq() const { return 1; }
  virtual int n_ctx_needed() const = 0;
  // Tokens one repetition processes (the numerator of tokens/s).
  virtual int tokens_per_rep() const = 0;
  // One repetition; the caller has cleared the memory and times this call.
  virtual Outcome run_once(Context& ctx) = 0;
  // Recurrent-state snapshots the Context must keep (speculative decoding's rollback window).
  virtual int snapshot_slots() const { return 0; }
  // Extra figures of the last repetition, printed under the table ("" = none).
  virtual std::string extra() const { return ""; }
};

// Fixed pseudo-random token ids in [0, n_vocab) (same seed every run, so two
// benchmarks of one model decode the same tokens).
std::vector<int32_t> bench_tokens(int n, int n_vocab, uint32_t seed = 1234);

// pp N: N prompt tokens in one decode call, logits for the last one only.
std::unique_ptr<BenchTest> make_prompt_test(int n_prompt, int n_vocab);
// tg N: N tokens, one decode call each (logits every step).
std::unique_ptr<BenchTest> make_gen_test(int n_gen, int n_vocab);
// tg N x K: K sequences each decode one token per step, the K tokens of a
// step in one batch; N steps (K * N tokens per repetition).
std::unique_ptr<BenchTest> make_parallel_gen_test(int n_gen, int n_parallel, int n_vocab);

// Greedy pick over logits, timed as "sampling" when profiling is on (tg tests
// call it only under --profile, so plain runs measure decoding alone).
int32_t profiled_argmax(const float* logits, int n_vocab);

}  // namespace tandem::tools::bench
