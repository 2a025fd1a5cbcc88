// Speculative decoding: drafters, the per-sequence rollback window and the
// draft / verify / accept loop (design in speculative.h).
#include "runtime/speculative.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

namespace tandem::runtime {

namespace {

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Greedy pick of the draft model (ties to the lower id, like the greedy sampler)
// and its softmax probability.
std::pair<int32_t, float> top1(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  double z = 0;
  for (int i = 0; i < n; ++i) z += std::exp(double(x[i]) - double(x[best]));
  return {best, static_cast<float>(1.0 / z)};
}

std::string printable(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\'') o += static_cast<char>(c);
    else o += fmt::format("\\x{:02x}", c);
  }
  return o;
}

}  // namespace

// ------------------------------------------------------------------ vocabulary

Outcome check_same_vocab(const Model& target, const Model& draft) {
  const std::string who = fmt::format("draft model {} and target model {}", draft.path(), target.path());
  if (target.n_vocab() != draft.n_vocab())
    return Outcome(Errc::kInvalidArgument,
                   fmt::format("{} have different vocabularies: {} vs {} tokens", who, draft.n_vocab(),
                               target.n_vocab()));
  if (target.bos() != draft.bos() || target.eos() != draft.eos())
    return Outcome(Errc::kInvalidArgument,
                   fmt::format("{} have different special tokens: BOS {} / EOS {} vs BOS {} / EOS {}", who,
                               draft.bos(), draft.eos(), target.bos(), target.eos()));
  for (int32_t t = 0; t < target.n_vocab(); ++t) {
    const std::string a = draft.token_to_piece(t, true), b = target.token_to_piece(t, true);
    if (a != b)
      return Outcome(Errc::kInvalidArgument,
                     fmt::format("{} have different vocabularies: token {} is '{}' in the draft, '{}' in the "
                                 "target",
                                 who, t, printable(a), printable(b)));
  }
  return Outcome();
}

// ------------------------------------------------------------------ prompt lookup

NgramDrafter::NgramDrafter(int ngram_max, int ngram_min)
    : nmax_(std::max(1, ngram_max)), nmin_(std::clamp(ngram_min, 1, std::max(1, ngram_max))) {}

Expected<std::vector<int32_t>> NgramDrafter::draft(std::span<const int32_t> t, int k) {
  std::vector<int32_t> out;
  const int T = static_cast<int>(t.size());
  if (k <= 0) return out;
  for (int n = nmax_; n >= nmin_; --n) {
    if (T < n + 1) continue;
    const int32_t* pat = t.data() + T - n;
    // The most recent earlier occurrence: it ends before the pattern itself.
    for (int i = T - n - 1; i >= 0; --i) {
      if (!std::equal(pat, pat + n, t.data() + i)) continue;
      const int from = i + n, to = std::min(T, from + k);
      out.assign(t.begin() + from, t.begin() + to);
      return out;
    }
  }
  return out;
}

// ------------------------------------------------------------------ rollback window

RollbackWindow::RollbackWindow(Context& ctx, int seq, int window)
    : ctx_(ctx),
      seq_(seq),
      recurrent_(ctx.model().kind() != ModelKind::kAttentionOnly),
      window_(window > 0 ? window : 8) {}

RollbackWindow::~RollbackWindow() {
  if (snap_ >= 0) (void)ctx_.release(snap_);
}

Outcome RollbackWindow::checkpoint() {
  if (!recurrent_) return Outcome();  // attention cells are simply dropped on a cut
  if (ctx_.options().snapshot_slots < 1)
    return Outcome(Errc::kInvalidArgument,
                   fmt::format("speculative decoding on {} ({} model) needs a context with snapshot_slots >= 1 "
                               "for its rollback window",
                               ctx_.model().path(), model_kind_name(ctx_.model().kind())));
  if (pending_replay() > window_)
    if (Outcome o = flush(); !o) return o;
  if (snap_ >= 0 && snap_n_ == n_state_) return Outcome();  // the state still sits at the held snapshot
  if (snap_ >= 0) (void)ctx_.release(snap_);  // the window holds one snapshot per sequence
  snap_ = -1;
  auto id = ctx_.snapshot(seq_);
  if (!id) return id.outcome();
  snap_ = *id;
  snap_n_ = n_state_;
  return Outcome();
}

Outcome RollbackWindow::cut(int n_keep) {
  if (n_keep >= static_cast<int>(held_.size())) return Outcome();
  held_.resize(static_cast<size_t>(std::max(n_keep, 0)));
  // Attention cells at >= n_keep go; the recurrent state goes back to the
  // newest snapshot before n_keep (ours), the kept tokens after it wait.
  auto from = ctx_.seq_rm_deferred(seq_, n_keep);
  if (!from) {
    held_.clear();
    n_state_ = 0;
    (void)ctx_.seq_rm(seq_, -1, -1);  // leave no memory that contradicts held_
    return from.outcome();
  }
  const int was = std::min(n_state_, n_keep);
  n_state_ = std::min(*from, n_keep);
  replayed_ += std::max(0, was - n_state_);  // computed once, to be computed again
  return Outcome();
}

Outcome RollbackWindow::decode_rows(std::span<const int32_t> tokens, bool all_outputs) {
  Batch b;
  for (int p = n_state_; p < static_cast<int>(held_.size()); ++p) b.add(held_[p], p, {seq_}, false);
  const int base = static_cast<int>(held_.size());
  for (size_t i = 0; i < tokens.size(); ++i)
    b.add(tokens[i], base + static_cast<int>(i), {seq_}, all_outputs || i + 1 == tokens.size());
  if (b.size() == 0) return Outcome();
  if (Outcome o = ctx_.decode(b); !o) return o;
  held_.insert(held_.end(), tokens.begin(), tokens.end());
  n_state_ = static_cast<int>(held_.size());
  return Outcome();
}

Outcome RollbackWindow::decode(std::span<const int32_t> tokens, bool all_outputs) {
  if (tokens.empty()) return Outcome(Errc::kInvalidArgument, "rollback window: nothing to decode");
  return decode_rows(tokens, all_outputs);
}

Outcome RollbackWindow::flush() { return decode_rows({}, false); }

Outcome RollbackWindow::sync(std::span<const int32_t> tokens) {
  if (tokens.empty()) return Outcome(Errc::kInvalidArgument, "rollback window: empty token list");
  size_t c = 0;
  while (c < held_.size() && c < tokens.size() && held_[c] == tokens[c]) ++c;
  if (c == tokens.size()) --c;  // already held: re-decode the last token for its logits
  if (Outcome o = cut(static_cast<int>(c)); !o) return o;
  return decode(tokens.subspan(c), false);
}

// ------------------------------------------------------------------ draft model

Expected<std::unique_ptr<ModelDrafter>> ModelDrafter::create(const Model& draft, const Model& target, int n_ctx,
                                                             int n_threads, float p_min) {
  if (Outcome o = check_same_vocab(target, draft); !o) return o;
  ContextOptions co;
  co.n_ctx = n_ctx;
  co.n_threads = n_threads;
  co.snapshot_slots = 2;
  auto ctx = Context::create(draft, co);
  if (!ctx) return Outcome(ctx.outcome().code(), "draft model context: " + ctx.error());
  std::unique_ptr<ModelDrafter> d(new ModelDrafter());
  d->ctx_ = std::move(ctx).value();
  d->win_ = std::make_unique<RollbackWindow>(*d->ctx_, 0);
  d->p_min_ = p_min;
  return d;
}

Expected<std::vector<int32_t>> ModelDrafter::draft(std::span<const int32_t> tokens, int k) {
  std::vector<int32_t> out;
  if (k <= 0 || tokens.empty()) return out;
  // Bring the draft context to exactly `tokens` (undoing its rejected drafts),
  // then mark the point the next round's cut goes back to.
  if (Outcome o = win_->sync(tokens); !o) return Outcome(o.code(), "draft model: " + o.message());
  if (Outcome o = win_->checkpoint(); !o) return o;
  Context& c = *ctx_;
  for (int i = 0; i < k; ++i) {
    if (static_cast<int>(win_->held().size()) + 1 > c.options().n_ctx) break;  // no room: draft fewer
    const auto [tok, p] = top1(c.logits(c.n_outputs() - 1), c.n_vocab());
    if (i > 0 && p < p_min_) break;
    out.push_back(tok);
    if (i + 1 == k) break;  // the last draft token needs no draft logits
    const int32_t one[1] = {tok};
    if (Outcome o = win_->decode(one, false); !o) return Outcome(o.code(), "draft model: " + o.message());
  }
  return out;
}

// ------------------------------------------------------------------ decoder

SpeculativeDecoder::SpeculativeDecoder(Context& target, int seq, Drafter* drafter, SpeculativeOptions opts)
    : ctx_(target), drafter_(drafter), opts_(opts), win_(target, seq, std::max(4, opts.draft_max)) {}

Outcome SpeculativeDecoder::prefill(std::span<const int32_t> prompt) {
  if (prompt.empty()) return Outcome(Errc::kInvalidArgument, "speculative decoding: empty prompt");
  if (!win_.held().empty() || !tokens_.empty())
    return Outcome(Errc::kInvalidArgument, "speculative decoding: prefill() called twice");
  tokens_.assign(prompt.begin(), prompt.end());
  if (prompt.size() == 1) return Outcome();
  return win_.decode(prompt.first(prompt.size() - 1), false);
}

Outcome SpeculativeDecoder::step(Sampler& sampler, int max_emit, const std::function<bool(int32_t)>& stop,
                                 std::vector<int32_t>& out, bool& stopped) {
  stopped = false;
  if (tokens_.empty()) return Outcome(Errc::kInvalidArgument, "speculative decoding: step() before prefill()");
  if (max_emit < 1) return Outcome(Errc::kInvalidArgument, "speculative decoding: max_emit < 1");
  const int n_held = static_cast<int>(tokens_.size()) - 1;  // the last token is pending
  // Room: drafts beyond what may be emitted, or beyond the context, are wasted.
  int k = std::min(opts_.draft_max, max_emit - 1);
  k = std::min(k, ctx_.options().n_ctx - n_held - 1);
  std::vector<int32_t> drafts;
  if (drafter_ != nullptr && k > 0) {
    const auto t0 = std::chrono::steady_clock::now();
    auto d = drafter_->draft(tokens_, k);
    if (!d) return d.outcome();
    drafts = std::move(d).value();
    if (static_cast<int>(drafts.size()) > k) drafts.resize(static_cast<size_t>(k));
    stats_.draft_s += since(t0);
    stats_.draft_replayed = drafter_->replayed_tokens();
  }

  // Verify: the pending token and the drafts in one call, every row outputs.
  const auto t1 = std::chrono::steady_clock::now();
  if (!drafts.empty())
    if (Outcome o = win_.checkpoint(); !o) return o;
  std::vector<int32_t> rows;
  rows.reserve(drafts.size() + 1);
  rows.push_back(tokens_.back());
  rows.insert(rows.end(), drafts.begin(), drafts.end());
  if (Outcome o = win_.decode(rows, true); !o) return o;
  stats_.verify_s += since(t1);
  ++stats_.rounds;
  stats_.drafted += static_cast<int64_t>(drafts.size());

  // Accept: row i holds the target's logits after tokens_ + drafts[0, i).
  for (size_t i = 0; i <= drafts.size(); ++i) {
    const int32_t tok = sampler.sample(ctx_.logits(static_cast<int>(i)), ctx_.n_vocab());
    out.push_back(tok);
    tokens_.push_back(tok);
    ++stats_.emitted;
    if (stop && stop(tok)) {
      stopped = true;
      break;
    }
    sampler.accept(tok);
    if (i == drafts.size() || tok != drafts[i]) break;
    ++stats_.accepted;
    if (static_cast<int>(i) + 1 >= max_emit) break;
  }

  // Roll back what was decoded beyond the accepted tokens (all but the new pending one).
  const auto t2 = std::chrono::steady_clock::now();
  const int64_t before = win_.replayed_tokens();
  if (Outcome o = win_.cut(static_cast<int>(tokens_.size()) - 1); !o) return o;
  stats_.replayed += win_.replayed_tokens() - before;
  stats_.rollback_s += since(t2);
  return Outcome();
}

}  // namespace tandem::runtime
