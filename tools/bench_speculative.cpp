// Speculative-decoding test kinds of `tandem bench` (see bench_speculative.h).
#include "bench_speculative.h"

#include <fmt/format.h>

namespace tandem::tools::bench {

namespace {

int32_t argmax(const float* x, int n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

class GreedyGenTest final : public BenchTest {
 public:
  GreedyGenTest(int n, std::vector<int32_t> prompt, std::shared_ptr<SpecBenchShared> sh)
      : n_(n), prompt_(std::move(prompt)), sh_(std::move(sh)) {}
  std::string name() const override { return "tg" + std::to_string(n_) + " greedy"; }
  std::string kind() const override { return "tg_greedy"; }
  int n_prompt() const override { return static_cast<int>(prompt_.size()); }
  int n_gen() const override { return n_; }
  int n_ctx_needed() const override { return static_cast<int>(prompt_.size()) + n_; }
  int tokens_per_rep() const override { return n_; }
  Outcome run_once(Context& ctx) override {
    Batch b;
    for (size_t i = 0; i < prompt_.size(); ++i) b.add(prompt_[i], int(i), {0}, i + 1 == prompt_.size());
    if (Outcome o = ctx.decode(b); !o) return o;
    std::vector<int32_t> out;
    for (int i = 0; i < n_; ++i) {
      const int32_t t = argmax(ctx.logits(0), ctx.n_vocab());
      out.push_back(t);
      if (i + 1 == n_) break;
      b.clear();
      b.add(t, static_cast<int>(prompt_.size()) + i, {0}, true);
      if (Outcome o = ctx.decode(b); !o) return o;
    }
    sh_->baseline = std::move(out);
    return {};
  }

 private:
  int n_;
  std::vector<int32_t> prompt_;
  std::shared_ptr<SpecBenchShared> sh_;
};

class SpecGenTest final : public BenchTest {
 public:
  SpecGenTest(int n, std::vector<int32_t> prompt, runtime::Drafter* d, int k, std::shared_ptr<SpecBenchShared> sh)
      : n_(n), k_(k), prompt_(std::move(prompt)), d_(d), sh_(std::move(sh)) {}
  std::string name() const override { return "tg" + std::to_string(n_) + " spec"; }
  std::string kind() const override { return "tg_spec"; }
  int n_prompt() const override { return static_cast<int>(prompt_.size()); }
  int n_gen() const override { return n_; }
  int n_ctx_needed() const override { return static_cast<int>(prompt_.size()) + n_ + k_ + 1; }
  int snapshot_slots() const override { return 2; }
  int tokens_per_rep() const override { return n_; }
  Outcome run_once(Context& ctx) override {
    SamplerOptions so;
    so.temperature = 0;
    Sampler s(so);
    runtime::SpeculativeDecoder dec(ctx, 0, d_, {.draft_max = k_});
    if (Outcome o = dec.prefill(prompt_); !o) return o;
    std::vector<int32_t> out;
    bool stopped = false;
    while (static_cast<int>(out.size()) < n_)
      if (Outcome o = dec.step(s, n_ - static_cast<int>(out.size()), nullptr, out, stopped); !o) return o;
    sh_->last = dec.stats();
    if (!sh_->baseline.empty() && out != sh_->baseline)
      return Outcome(Errc::kInternal, "speculative output differs from greedy decoding");
    return {};
  }
  std::string extra() const override {
    const auto& s = sh_->last;
    return fmt::format("acceptance {:.1f}% ({}/{}), {:.2f} tokens per target call, {} tokens replayed",
                       100.0 * s.acceptance(), s.accepted, s.drafted, s.tokens_per_round(), s.replayed);
  }

 private:
  int n_, k_;
  std::vector<int32_t> prompt_;
  runtime::Drafter* d_;
  std::shared_ptr<SpecBenchShared> sh_;
};

}  // namespace

std::unique_ptr<BenchTest> make_greedy_gen_test(int n_gen, std::vector<int32_t> prompt,
                                                std::shared_ptr<SpecBenchShared> shared) {
  return std::make_unique<GreedyGenTest>(n_gen, std::move(prompt), std::move(shared));
}
std::unique_ptr<BenchTest> make_spec_gen_test(int n_gen, std::vector<int32_t> prompt, runtime::Drafter* drafter,
                                              int draft_max, std::shared_ptr<SpecBenchShared> shared) {
  return std::make_unique<SpecGenTest>(n_gen, std::move(prompt), drafter, draft_max, std::move(shared));
}

}  // namespace tandem::tools::bench
