#pragma once
// Token samplers: a fixed chain of logit transforms followed by a draw.
//
//   penalties (repetition / frequency / presence over the last N accepted tokens)
//   -> logit bias -> top-k -> typical -> top-p -> min-p -> temperature -> draw
//
// An optional constraint (a grammar, see SamplerOptions::constraint) bans the
// tokens that cannot come next right after the logit bias, before the filters.
// The filters (top-k ... min-p) look at the untempered distribution; the
// temperature only reshapes what survives them. temperature <= 0 means greedy:
// the argmax after penalties and bias (ties go to the lower token id), no RNG.
// The draw uses std::mt19937 seeded explicitly, with our own uniform mapping,
// so a seed gives the same tokens on every platform.
// Self-contained (std only): part of the public API.
#include <cstdint>
#include <memory>
#include <random>
#include <utility>
#include <vector>

namespace tandem {

struct TokenCandidate;

// A stateful rule on which tokens may come next (grammar-constrained output).
// Each Sampler owns its own copy (clone()) of the constraint it was given.
class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // Sets .logit = -inf on every candidate whose token may not come next
  // (candidates already at -inf may be skipped).
  virtual void apply(TokenCandidate* cands, size_t n) = 0;
  // Advances past a generated token (one apply() allowed). False when the
  // token cannot continue the constrained output.
  virtual bool accept(int32_t token) = 0;
  // True when the output so far is complete (an end-of-generation token is allowed).
  virtual bool can_end() const = 0;
  virtual void reset() = 0;
  virtual std::unique_ptr<TokenConstraint> clone() const = 0;
};

struct SamplerOptions {
  float temperature = 0.8f;     // <= 0: greedy
  int top_k = 40;               // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float typical_p = 1.0f;       // >= 1: off
  float repeat_penalty = 1.0f;  // 1: off. logit > 0 ? logit / r : logit * r
  float frequency_penalty = 0;  // logit -= count * f
  float presence_penalty = 0;   // logit -= (count > 0) * p
  int penalty_last_n = 64;      // how many accepted tokens the penalties see (0: none, -1: all)
  std::vector<std::pair<int32_t, float>> logit_bias;  // added to the logit (-inf bans)
  uint32_t seed = 0;
  // Optional: e.g. a grammar (runtime/grammar/constraint.h). Cloned by every Sampler.
  std::shared_ptr<const TokenConstraint> constraint;
};

struct TokenCandidate {
  int32_t id;
  float logit;
  float p;  // probability after softmax of the surviving candidates
};

class Sampler {
 public:
  explicit Sampler(SamplerOptions opts);
  Sampler(const Sampler& o);
  Sampler& operator=(const Sampler& o);
  Sampler(Sampler&&) noexcept = default;
  Sampler& operator=(Sampler&&) noexcept = default;

  // Picks a token from logits[0 .. n_vocab). Does not accept it (call accept()).
  int32_t sample(const float* logits, int n_vocab);
  // Records a generated token: for the penalties and, with a constraint, to
  // advance it (false when the constraint refuses the token).
  bool accept(int32_t token);
  // Records a prompt token for the penalties only (the constraint does not see it).
  void accept_prompt(int32_t token);
  // The constraint (nullptr when none): e.g. can_end() after sampling EOG.
  const TokenConstraint* constraint() const { return constraint_.get(); }
  // Forget accepted tokens and re-seed the RNG with the original seed.
  void reset();

  // The candidates that survive penalties, bias and the filters, with their
  // probabilities after temperature (sorted by descending probability).
  // Greedy samplers return the single argmax. Exposed for tests and tools.
  std::vector<TokenCandidate> candidates(const float* logits, int n_vocab) const;

  const SamplerOptions& options() const { return opts_; }

 private:
  SamplerOptions opts_;
  std::mt19937 rng_;
  std::vector<int32_t> history_;  // accepted tokens, oldest first
  std::unique_ptr<TokenConstraint> constraint_;  // this sampler's own copy
};

}  // namespace tandem
