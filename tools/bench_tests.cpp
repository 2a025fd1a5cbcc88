// Test kinds of `tandem bench` (see bench_tests.h).
#include "bench_tests.h"

#include <random>

#include "core/profiler.h"

namespace tandem::tools::bench {

std::vector<int32_t> bench_tokens(int n, int n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, n_vocab - 1);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = dist(rng);
  return t;
}

int32_t profiled_argmax(const float* logits, int n_vocab) {
  TANDEM_PROF_OP(kSampling);
  int32_t best = 0;
  for (int32_t i = 1; i < n_vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}

namespace {

class PromptTest final : public BenchTest {
 public:
  PromptTest(int n, int n_vocab) : n_(n) {
    const auto toks = bench_tokens(n, n_vocab);
    for (int i = 0; i < n; ++i) batch_.add(toks[i], i, {0}, i + 1 == n);
  }
  std::string name() const override { return "pp" + std::to_string(n_); }
  std::string kind() const override { return "pp"; }
  int n_prompt() const override { return n_; }
  int n_ctx_needed() const override { return n_; }
  int tokens_per_rep() const override { return n_; }
  Outcome run_once(Context& ctx) override { return ctx.decode(batch_); }

 private:
  int n_;
  Batch batch_;
};

class GenTest final : public BenchTest {
 public:
  GenTest(int n, int k, int n_vocab) : n_(n), k_(k), toks_(bench_tokens(n * k, n_vocab, 4321)) {}
  std::string name() const override {
    return "tg" + std::to_string(n_) + (k_ > 1 ? " x" + std::to_string(k_) : "");
  }
  std::string kind() const override { return k_ > 1 ? "tg_parallel" : "tg"; }
  int n_gen() const override { return n_; }
  int n_parallel() const override { return k_; }
  int n_seq() const override { return k_; }
  int n_ctx_needed() const override { return n_ * k_; }
  int tokens_per_rep() const override { return n_ * k_; }
  Outcome run_once(Context& ctx) override {
    const bool sample = prof::enabled();
    Batch b;
    for (int step = 0; step < n_; ++step) {
      b.clear();
      for (int s = 0; s < k_; ++s) b.add(toks_[static_cast<size_t>(step * k_ + s)], step, {s}, true);
      if (Outcome st = ctx.decode(b); !st) return st;
      if (sample)
        for (int s = 0; s < k_; ++s) (void)profiled_argmax(ctx.logits(s), ctx.n_vocab());
    }
    return {};
  }

 private:
  int n_, k_;
  std::vector<int32_t> toks_;
};

}  // namespace

std::unique_ptr<BenchTest> make_prompt_test(int n_prompt, int n_vocab) {
  return std::make_unique<PromptTest>(n_prompt, n_vocab);
}
std::unique_ptr<BenchTest> make_gen_test(int n_gen, int n_vocab) {
  return std::make_unique<GenTest>(n_gen, 1, n_vocab);
}
std::unique_ptr<BenchTest> make_parallel_gen_test(int n_gen, int n_parallel, int n_vocab) {
  return std::make_unique<GenTest>(n_gen, n_parallel, n_vocab);
}

}  // namespace tandem::tools::bench
