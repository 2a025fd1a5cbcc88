// Speculative generation for `tandem run` / `tandem bench` (see run_speculative.h).
#include "run_speculative.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

namespace tandem::tools {

namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

void add_spec_options(CLI::App& app, SpecArgs& a) {
  app.add_option("--draft-model", a.draft_model,
                 "speculative decoding: a smaller GGUF model with the same vocabulary drafts tokens");
  app.add_option("--lookup,--draft-ngram", a.lookup,
                 "speculative decoding by prompt lookup: draft what followed the last N (down to 2) tokens "
                 "earlier in the text (0 = off)")
      ->check(CLI::Range(0, 64));
  app.add_option("--draft-max", a.draft_max, "speculative decoding: draft tokens verified per target call")
      ->check(CLI::Range(1, 64));
  app.add_option("--draft-p-min", a.p_min,
                 "speculative decoding: the draft model stops drafting below this probability (0 = off)")
      ->check(CLI::Range(0.0f, 1.0f));
}

Expected<std::unique_ptr<runtime::Drafter>> make_drafter(const SpecArgs& a, const Model& target, int n_ctx,
                                                         int n_threads, std::unique_ptr<Model>& draft_holder) {
  if (!a.draft_model.empty() && a.lookup > 0)
    return Outcome(Errc::kInvalidArgument, "--draft-model and --lookup are alternatives: give one");
  // Single-token matches draft mostly noise: require at least a bigram (unless --lookup 1).
  if (a.lookup > 0)
    return std::unique_ptr<runtime::Drafter>(new runtime::NgramDrafter(a.lookup, std::min(a.lookup, 2)));
  auto dm = Model::load(a.draft_model);
  if (!dm) return Outcome(dm.outcome().code(), "draft model: " + dm.error());
  draft_holder = std::move(dm).value();
  auto d = runtime::ModelDrafter::create(*draft_holder, target, n_ctx, n_threads, a.p_min);
  if (!d) return d.outcome();
  return std::unique_ptr<runtime::Drafter>(std::move(d).value());
}

Expected<SpecRun> generate_speculative(Context& ctx, runtime::Drafter* drafter, int draft_max,
                                       const std::vector<int32_t>& prompt, int n_predict, Sampler& sampler,
                                       const std::function<bool(int32_t)>& stop,
                                       const std::function<void(int32_t)>& on_token) {
  SpecRun r;
  runtime::SpeculativeDecoder dec(ctx, 0, drafter, {.draft_max = draft_max});
  const auto t0 = std::chrono::steady_clock::now();
  if (Outcome o = dec.prefill(prompt); !o) return Outcome(o.code(), "prompt: " + o.message());
  r.prompt_s = since(t0);
  const auto t1 = std::chrono::steady_clock::now();
  bool stopped = false;
  std::vector<int32_t> step_out;
  while (!stopped && static_cast<int>(r.tokens.size()) < n_predict) {
    step_out.clear();
    const int left = n_predict - static_cast<int>(r.tokens.size());
    if (Outcome o = dec.step(sampler, left, stop, step_out, stopped); !o)
      return Outcome(o.code(), "generation: " + o.message());
    for (int32_t t : step_out) {
      r.tokens.push_back(t);
      if (on_token) on_token(t);
    }
  }
  r.gen_s = since(t1);
  r.stats = dec.stats();
  return r;
}

std::string format_spec_stats(const SpecRun& r) {
  const auto& s = r.stats;
  return fmt::format(
      "speculative: {} rounds, {} drafted, {} accepted (acceptance {:.1f}%), {:.2f} tokens per target call\n"
      "speculative: rollback replayed {} target + {} draft tokens; draft {:.3f} s, verify {:.3f} s, "
      "rollback {:.3f} s\n",
      s.rounds, s.drafted, s.accepted, 100.0 * s.acceptance(), s.tokens_per_round(), s.replayed,
      s.draft_replayed, s.draft_s, s.verify_s, s.rollback_s);
}

}  // namespace tandem::tools
