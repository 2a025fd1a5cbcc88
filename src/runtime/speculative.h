#pragma once
// Speculative decoding (issue 9): a cheap drafter proposes up to K tokens, the
// target model verifies them in ONE decode call (every row outputs logits),
// the longest prefix that the target's own sampler agrees with is accepted,
// plus the target's token at the first disagreement (or after the last draft
// token). The emitted tokens are exactly those non-speculative decoding emits:
// every emitted token is drawn by the caller's Sampler from the target's
// logits for the same prefix, in the same order (greedy: the argmax; seeded
// sampling: the same RNG draws), so speculation changes speed, never text.
//
// Drafters: NgramDrafter (prompt lookup, no model) and ModelDrafter (a smaller
// model with the same vocabulary, greedy, in its own Context).
//
// ===================== the rollback window (design) =====================
// After a verify call of the pending token + K drafts, the target's sequence
// holds K+1 new positions of which only the accepted ones stay. Undoing the
// rest is what the rollback window does, per sequence:
//  * attention layers: the rejected positions' cells are dropped (a suffix
//    cut; nothing is recomputed);
//  * recurrent layers (Mamba/Mamba2 state cannot be trimmed): before a verify
//    call the window holds ONE snapshot of the sequence at the position its
//    recurrent state has reached (a state copy plus references to attention
//    cells, in the context's bounded snapshot pool; the previous one is
//    released). A rejection restores it (Context::seq_rm_deferred) and the
//    kept tokens after it are NOT replayed at once: they are put in front of
//    the next decode call of the sequence (the next verify batch, or the
//    draft model's next call) as rows without outputs. Rows are nearly free
//    in a decode call that reads every weight anyway, so a rejection costs no
//    extra forward pass, and a round costs at most one state copy (none while
//    the state still sits at the held snapshot), never one per drafted token.
//  * The window is bounded: when more than W = max(K, 4) tokens wait for
//    replay (a run of rejections keeps the state at an old snapshot), they
//    are decoded on their own first and a new snapshot is taken there, so a
//    decode call carries at most W + K + 1 rows. When every draft is accepted
//    nothing is undone at all.
//  * Not done ("where the math allows"): keeping the per-token states of the
//    verify batch so that a rollback is a state copy instead of a replay. The
//    Mamba2 prefill scan is chunked and never materialises per-token states;
//    capturing them needs the scan kernels and layer code (src/kernels,
//    src/model) to write intermediate states for the last W tokens, which the
//    memory views (memory/views.h) do not carry today.
// The same window serves the draft model's own context.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "tandem/sampler.h"
#include "tandem/tandem.h"

namespace tandem::runtime {

// Refuses a draft model whose vocabulary differs from the target's: the
// message names the first difference (size, BOS/EOS ids, a token's bytes).
Outcome check_same_vocab(const Model& target, const Model& draft);

class Drafter {
 public:
  virtual ~Drafter() = default;
  // Up to k tokens proposed to follow `tokens` (the accepted sequence so far:
  // prompt + emitted; its last token is not decoded by the target yet).
  // Fewer, or none, is fine.
  virtual Expected<std::vector<int32_t>> draft(std::span<const int32_t> tokens, int k) = 0;
  // Tokens the drafter re-decoded to undo its own rejected drafts.
  virtual int64_t replayed_tokens() const { return 0; }
};

// Prompt lookup: finds the most recent earlier occurrence of the last n tokens
// (n from ngram_max down to ngram_min) and proposes the tokens that followed it.
class NgramDrafter final : public Drafter {
 public:
  explicit NgramDrafter(int ngram_max = 3, int ngram_min = 1);
  Expected<std::vector<int32_t>> draft(std::span<const int32_t> tokens, int k) override;

 private:
  int nmax_, nmin_;
};

// Keeps sequence `seq` of a context equal to a token list that grows by
// speculative tokens and is cut back to accepted prefixes (the design above).
class RollbackWindow {
 public:
  // window: the most tokens left waiting for replay (0: max(4, 8)).
  RollbackWindow(Context& ctx, int seq, int window = 0);
  ~RollbackWindow();
  RollbackWindow(const RollbackWindow&) = delete;
  RollbackWindow& operator=(const RollbackWindow&) = delete;

  // Tokens of seq: decoded, or waiting to be replayed by the next decode().
  const std::vector<int32_t>& held() const { return held_; }
  int pending_replay() const { return static_cast<int>(held_.size()) - n_state_; }
  // Marks the point a later cut() goes back to: the position the recurrent
  // state has reached (a snapshot; needs ContextOptions::snapshot_slots >= 1;
  // nothing for attention-only models, nothing new while the held snapshot is
  // still there). Replays first when more than `window` tokens wait.
  Outcome checkpoint();
  // seq keeps held()[0, n_keep): attention cells beyond are dropped, the
  // recurrent state goes back to the checkpoint; the kept tokens after it
  // wait for the next decode().
  Outcome cut(int n_keep);
  // Appends tokens (positions continue held()), after the tokens waiting for
  // replay (no outputs). Outputs for every new row when all_outputs, else for
  // the last row only: logits(i) of the context is new row i (or the last).
  Outcome decode(std::span<const int32_t> tokens, bool all_outputs);
  // Decodes the tokens waiting for replay, if any (the context then holds held()).
  Outcome flush();
  // Makes seq hold exactly `tokens`: cuts at the common prefix, decodes the
  // rest (the last row outputs logits). `tokens` must not be empty.
  Outcome sync(std::span<const int32_t> tokens);
  int64_t replayed_tokens() const { return replayed_; }
  Context& context() { return ctx_; }

 private:
  Outcome decode_rows(std::span<const int32_t> tokens, bool all_outputs);
  Context& ctx_;
  int seq_;
  bool recurrent_;
  int window_;
  std::vector<int32_t> held_;
  int n_state_ = 0;   // held_[0, n_state_) are in the context's state; the rest wait
  int64_t snap_ = -1;
  int snap_n_ = -1;   // n_state_ when snap_ was taken
  int64_t replayed_ = 0;
};

// A smaller model with the same vocabulary drafting greedily in its own
// context (one sequence, two snapshot slots).
class ModelDrafter final : public Drafter {
 public:
  // p_min > 0: stop drafting when the draft model's top probability falls below it.
  static Expected<std::unique_ptr<ModelDrafter>> create(const Model& draft, const Model& target, int n_ctx,
                                                        int n_threads, float p_min = 0.0f);
  Expected<std::vector<int32_t>> draft(std::span<const int32_t> tokens, int k) override;
  int64_t replayed_tokens() const override { return win_->replayed_tokens(); }

 private:
  ModelDrafter() = default;
  std::unique_ptr<Context> ctx_;
  std::unique_ptr<RollbackWindow> win_;
  float p_min_ = 0.0f;
};

struct SpeculativeOptions {
  int draft_max = 8;  // K: drafted tokens verified per target decode call
};

struct SpeculativeStats {
  int64_t rounds = 0;         // target verify calls
  int64_t drafted = 0;        // draft tokens proposed
  int64_t accepted = 0;       // draft tokens accepted
  int64_t emitted = 0;        // tokens emitted (accepted + one per round)
  int64_t replayed = 0;       // target tokens re-decoded by rollbacks
  int64_t draft_replayed = 0; // draft-model tokens re-decoded by its rollbacks
  double draft_s = 0, verify_s = 0, rollback_s = 0;
  double acceptance() const { return drafted > 0 ? double(accepted) / double(drafted) : 0.0; }
  double tokens_per_round() const { return rounds > 0 ? double(emitted) / double(rounds) : 0.0; }
};

class SpeculativeDecoder {
 public:
  // `drafter` may be null (plain decoding through the same loop). `target`
  // must have snapshot_slots >= 1 when its model has recurrent layers.
  SpeculativeDecoder(Context& target, int seq, Drafter* drafter, SpeculativeOptions opts = {});
  // Decodes what the rollback window still holds back, so that the context
  // holds every accepted token but the last (call before other uses of seq).
  Outcome flush() { return win_.flush(); }

  // Decodes the prompt except its last token (that one is verified together
  // with the first draft). seq must be empty; the prompt must not be.
  Outcome prefill(std::span<const int32_t> prompt);
  // One round: draft, verify, accept. Emitted tokens are appended to `out`
  // (1 .. K+1 of them, never more than max_emit >= 1). Each is drawn with
  // sampler.sample() from the target's logits; tokens for which stop(tok)
  // holds end the round (and are not passed to sampler.accept(), like the
  // non-speculative loop of `tandem run`); the others are accepted into it.
  // Returns true in `stopped` when a stop token was emitted.
  Outcome step(Sampler& sampler, int max_emit, const std::function<bool(int32_t)>& stop,
               std::vector<int32_t>& out, bool& stopped);

  const std::vector<int32_t>& tokens() const { return tokens_; }  // prompt + emitted
  const SpeculativeStats& stats() const { return stats_; }

 private:
  Context& ctx_;
  Drafter* drafter_;
  SpeculativeOptions opts_;
  RollbackWindow win_;
  std::vector<int32_t> tokens_;  // accepted; the last one not decoded yet
  SpeculativeStats stats_;
};

}  // namespace tandem::runtime
