// Sampler chain (see include/tandem/sampler.h for the order and semantics).
#include "tandem/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

namespace tandem {
namespace {

using Cands = std::vector<TokenCandidate>;

// Softmax over the candidates' logits into .p (stable: subtract the max).
void softmax(Cands& c) {
  if (c.empty()) return;
  float mx = -std::numeric_limits<float>::infinity();
  for (const auto& t : c) mx = std::max(mx, t.logit);
  double sum = 0;
  for (auto& t : c) {
    t.p = std::isinf(t.logit) && t.logit < 0 ? 0.0f : std::exp(t.logit - mx);
    sum += t.p;
  }
  for (auto& t : c) t.p = static_cast<float>(t.p / sum);
}

// Descending logit, ties by lower id: a strict total order (ids are unique),
// so every stage is deterministic and a partial sort selects exactly what a
// full sort would put first.
bool before(const TokenCandidate& a, const TokenCandidate& b) {
  if (a.logit != b.logit) return a.logit > b.logit;
  return a.id < b.id;
}

void sort_desc(Cands& c) { std::sort(c.begin(), c.end(), before); }

// Keeps the k best in order. Over a 100k vocabulary a partial sort costs a
// fraction of a full one (k log k + n, not n log n).
void apply_top_k(Cands& c, int k) {
  if (k <= 0 || static_cast<size_t>(k) >= c.size()) return;
  std::partial_sort(c.begin(), c.begin() + k, c.end(), before);
  c.resize(k);
}

// Keep the most probable tokens until their mass reaches p (at least one).
void apply_top_p(Cands& c, float p) {
  if (p >= 1.0f || c.empty()) return;
  sort_desc(c);
  softmax(c);
  double cum = 0;
  size_t keep = c.size();
  for (size_t i = 0; i < c.size(); ++i) {
    cum += c[i].p;
    if (cum >= p) {
      keep = i + 1;
      break;
    }
  }
  c.resize(keep);
}

// Keep tokens whose probability is at least min_p times the largest one.
void apply_min_p(Cands& c, float min_p) {
  if (min_p <= 0.0f || c.empty()) return;
  float mx = -std::numeric_limits<float>::infinity();
  for (const auto& t : c) mx = std::max(mx, t.logit);
  const float thr = mx + std::log(min_p);  // p_i >= min_p * p_max  <=>  l_i >= l_max + log(min_p)
  Cands kept;
  for (const auto& t : c)
    if (t.logit >= thr) kept.push_back(t);
  c = std::move(kept);
}

// Locally typical sampling: keep the tokens whose surprisal is closest to the
// entropy until their mass reaches typical_p.
void apply_typical(Cands& c, float typ) {
  if (typ >= 1.0f || c.size() <= 1) return;
  softmax(c);
  double ent = 0;
  for (const auto& t : c)
    if (t.p > 0) ent -= t.p * std::log(static_cast<double>(t.p));
  std::vector<std::pair<double, size_t>> order;
  order.reserve(c.size());
  for (size_t i = 0; i < c.size(); ++i) {
    double s = c[i].p > 0 ? std::fabs(-std::log(static_cast<double>(c[i].p)) - ent)
                          : std::numeric_limits<double>::infinity();
    order.emplace_back(s, i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  double cum = 0;
  Cands kept;
  for (const auto& [s, i] : order) {
    kept.push_back(c[i]);
    cum += c[i].p;
    if (cum >= typ) break;
  }
  c = std::move(kept);
}

}  // namespace

Sampler::Sampler(SamplerOptions opts) : opts_(std::move(opts)), rng_(opts_.seed) {
  if (opts_.constraint) constraint_ = opts_.constraint->clone();
}

Sampler::Sampler(const Sampler& o)
    : opts_(o.opts_), rng_(o.rng_), history_(o.history_), constraint_(o.constraint_ ? o.constraint_->clone() : nullptr) {}

Sampler& Sampler::operator=(const Sampler& o) {
  if (this != &o) {
    opts_ = o.opts_;
    rng_ = o.rng_;
    history_ = o.history_;
    constraint_ = o.constraint_ ? o.constraint_->clone() : nullptr;
  }
  return *this;
}

bool Sampler::accept(int32_t token) {
  history_.push_back(token);
  return constraint_ ? constraint_->accept(token) : true;
}

void Sampler::accept_prompt(int32_t token) { history_.push_back(token); }

void Sampler::reset() {
  history_.clear();
  rng_.seed(opts_.seed);
  if (constraint_) constraint_->reset();
}

std::vector<TokenCandidate> Sampler::candidates(const float* logits, int n_vocab) const {
  Cands c(static_cast<size_t>(std::max(n_vocab, 0)));
  for (int i = 0; i < n_vocab; ++i) c[i] = {i, logits[i], 0.0f};

  // Penalties over the last N accepted tokens.
  const bool any_penalty = opts_.repeat_penalty != 1.0f || opts_.frequency_penalty != 0.0f ||
                           opts_.presence_penalty != 0.0f;
  if (any_penalty && opts_.penalty_last_n != 0 && !history_.empty()) {
    size_t n = opts_.penalty_last_n < 0 ? history_.size()
                                        : std::min(history_.size(), size_t(opts_.penalty_last_n));
    std::unordered_map<int32_t, int> count;
    for (size_t i = history_.size() - n; i < history_.size(); ++i) ++count[history_[i]];
    for (const auto& [tok, cnt] : count) {
      if (tok < 0 || tok >= n_vocab) continue;
      float& l = c[tok].logit;
      if (opts_.repeat_penalty != 1.0f) l = l > 0 ? l / opts_.repeat_penalty : l * opts_.repeat_penalty;
      l -= cnt * opts_.frequency_penalty + (cnt > 0 ? opts_.presence_penalty : 0.0f);
    }
  }
  for (const auto& [tok, bias] : opts_.logit_bias)
    if (tok >= 0 && tok < n_vocab) c[tok].logit += bias;
  // The constraint bans what cannot come next (before the filters see the distribution).
  if (constraint_) constraint_->apply(c.data(), c.size());

  // Banned tokens (-inf) never survive.
  std::erase_if(c, [](const TokenCandidate& t) { return std::isinf(t.logit) && t.logit < 0; });
  if (c.empty()) return c;

  if (opts_.temperature <= 0.0f) {  // greedy: one linear scan for the best
    c[0] = *std::min_element(c.begin(), c.end(), before);
    c.resize(1);
    c[0].p = 1.0f;
    return c;
  }
  apply_top_k(c, opts_.top_k);
  apply_typical(c, opts_.typical_p);
  apply_top_p(c, opts_.top_p);
  apply_min_p(c, opts_.min_p);
  for (auto& t : c) t.logit /= opts_.temperature;
  sort_desc(c);
  softmax(c);
  return c;
}

int32_t Sampler::sample(const float* logits, int n_vocab) {
  Cands c = candidates(logits, n_vocab);
  if (c.empty()) return -1;  // every token banned
  if (c.size() == 1) return c[0].id;
  // u in [0, 1) from the top 24 bits of one mt19937 draw: exact in float, portable.
  const double u = static_cast<double>(rng_() >> 8) * (1.0 / 16777216.0);
  double cum = 0;
  for (const auto& t : c) {
    cum += t.p;
    if (u < cum) return t.id;
  }
  return c.back().id;  // rounding: the mass summed to slightly below 1
}

}  // namespace tandem
