// tandem::Context memory operations: sequence edits with token-history
// bookkeeping, suffix cuts with replay, snapshots.
#include <algorithm>

#include "runtime/context_impl.h"

namespace tandem {

using runtime::to_outcome;

namespace runtime {
void history_erase(History& h, int32_t p0, int32_t p1) {
  std::erase_if(h, [&](const std::pair<int32_t, int32_t>& e) {
    return e.first >= p0 && (p1 < 0 || e.first < p1);
  });
}
}  // namespace runtime

namespace {
bool in_range(int32_t p, int32_t p0, int32_t p1) { return p >= std::max(p0, 0) && (p1 < 0 || p < p1); }
void sort_history(History& h) {
  std::stable_sort(h.begin(), h.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
}
}  // namespace

Status Context::Impl::check_seq(int s, const char* what) const {
  if (s < 0 || s >= opts.n_seq_max)
    return TANDEM_ERR(kInvalidArgument, "{}: sequence id {} outside [0, {})", what, s, opts.n_seq_max);
  return Status::ok();
}

void Context::Impl::prune_snapshot_histories() {
  std::erase_if(snap_hist, [&](const auto& kv) { return mem->snapshot_pos(kv.first) < 0; });
}

Status Context::Impl::replay(int s, int32_t from, int32_t end) {
  memory::Batch b;
  for (const auto& [p, t] : hist[s]) {
    if (p < from || p >= end) continue;
    b.tokens.push_back(t);
    b.pos.push_back(p);
    b.seq.push_back({s});
  }
  if (b.size() != end - from)
    return TANDEM_ERR(kInternal,
                      "replay of sequence {}: the token history holds {} of the {} tokens at positions [{}, {})",
                      s, b.size(), end - from, from, end);
  for (int i = 1; i < b.size(); ++i)
    if (b.pos[i] != b.pos[i - 1] + 1)
      return TANDEM_ERR(kInternal, "replay of sequence {}: history has a gap at position {}", s, b.pos[i - 1] + 1);
  b.output.assign(b.tokens.size(), 0);  // no logits (an empty vector would mean "last row")
  return run_batch(b, nullptr, false);
}

int Context::last_replayed_tokens() const { return impl_->last_replayed; }
int64_t Context::replayed_tokens_total() const { return impl_->replayed_total; }

Outcome Context::seq_rm(int seq, int p0, int p1) {
  Impl& I = *impl_;
  if (seq < 0) {
    int sum = 0;  // every sequence: the tokens replayed over all of them
    for (int s = 0; s < I.opts.n_seq_max; ++s) {
      if (Outcome o = seq_rm(s, p0, p1); !o) return o;
      sum += I.last_replayed;
    }
    I.last_replayed = sum;
    return Outcome();
  }
  I.last_replayed = 0;
  if (Status st = I.check_seq(seq, "seq_rm"); !st) return to_outcome(st);
  auto r = I.mem->seq_rm(seq, p0, p1);
  if (!r) return to_outcome(r.status());
  runtime::history_erase(I.hist[seq], std::max(p0, 0), p1);
  if (r->needs_replay()) {
    Status st = I.replay(seq, r->replay_from, r->replay_end);
    if (st) {
      I.last_replayed = r->replay_end - r->replay_from;
      I.replayed_total += I.last_replayed;
    }
    if (!st) {
      // The recurrent state is not where the history says: drop the whole
      // sequence rather than leave memory that contradicts it.
      (void)I.mem->seq_rm(seq, -1, -1);
      I.hist[seq].clear();
      return Outcome(runtime::to_errc(st.code()),
                     fmt::format("seq_rm: replaying sequence {} from position {} failed, the sequence was "
                                 "cleared: {}",
                                 seq, r->replay_from, st.message()));
    }
  }
  return Outcome();
}

Expected<int> Context::seq_rm_deferred(int seq, int p0) {
  Impl& I = *impl_;
  I.last_replayed = 0;
  if (Status st = I.check_seq(seq, "seq_rm_deferred"); !st) return to_outcome(st);
  p0 = std::max(p0, 0);
  auto r = I.mem->seq_rm(seq, p0, -1);
  if (!r) return to_outcome(r.status());
  runtime::history_erase(I.hist[seq], p0, -1);
  if (!r->needs_replay()) return seq_pos_max(seq) + 1;
  // The history follows the recurrent state: the caller re-decodes the rest.
  runtime::history_erase(I.hist[seq], r->replay_from, -1);
  return static_cast<int>(r->replay_from);
}

Outcome Context::seq_cp(int src, int dst, int p0, int p1) {
  Impl& I = *impl_;
  if (Status st = I.check_seq(src, "seq_cp"); !st) return to_outcome(st);
  if (Status st = I.check_seq(dst, "seq_cp"); !st) return to_outcome(st);
  if (src == dst) return Outcome();
  if (Status st = I.mem->seq_cp(src, dst, p0, p1); !st) return to_outcome(st);
  if (p0 <= 0 && p1 < 0) {
    I.hist[dst] = I.hist[src];
  } else {
    runtime::history_erase(I.hist[dst], std::max(p0, 0), p1);
    for (const auto& e : I.hist[src])
      if (in_range(e.first, p0, p1)) I.hist[dst].push_back(e);
    sort_history(I.hist[dst]);
  }
  return Outcome();
}

Outcome Context::seq_keep(int seq) {
  Impl& I = *impl_;
  if (Status st = I.check_seq(seq, "seq_keep"); !st) return to_outcome(st);
  if (Status st = I.mem->seq_keep(seq); !st) return to_outcome(st);
  for (int s = 0; s < I.opts.n_seq_max; ++s)
    if (s != seq) I.hist[s].clear();
  return Outcome();
}

Outcome Context::seq_add(int seq, int p0, int p1, int delta) {
  Impl& I = *impl_;
  if (Status st = I.check_seq(seq, "seq_add"); !st) return to_outcome(st);
  if (Status st = I.mem->seq_add(seq, p0, p1, delta); !st) return to_outcome(st);
  History& h = I.hist[seq];
  for (auto& e : h)
    if (in_range(e.first, p0, p1)) e.first += delta;
  std::erase_if(h, [](const auto& e) { return e.first < 0; });  // the memory drops those cells too
  sort_history(h);
  return Outcome();
}

Outcome Context::seq_div(int seq, int p0, int p1, int d) {
  Impl& I = *impl_;
  if (Status st = I.check_seq(seq, "seq_div"); !st) return to_outcome(st);
  if (d < 1) return Outcome(Errc::kInvalidArgument, fmt::format("seq_div: divisor {} < 1", d));
  if (Status st = I.mem->seq_div(seq, p0, p1, d); !st) return to_outcome(st);
  for (auto& e : I.hist[seq])
    if (in_range(e.first, p0, p1)) e.first /= d;
  sort_history(I.hist[seq]);
  return Outcome();
}

int Context::seq_pos_min(int seq) const {
  const Impl& I = *impl_;
  if (!I.check_seq(seq, "seq_pos_min")) return -1;
  return I.mem->has_attention() ? I.mem->seq_pos_min_attn(seq) : I.mem->seq_pos_min_rec(seq);
}

int Context::seq_pos_max(int seq) const {
  const Impl& I = *impl_;
  if (!I.check_seq(seq, "seq_pos_max")) return -1;
  return I.mem->has_recurrent() ? I.mem->seq_pos_max_rec(seq) : I.mem->seq_pos_max_attn(seq);
}

std::vector<int32_t> Context::seq_tokens(int seq) const {
  std::vector<int32_t> out;
  if (!impl_->check_seq(seq, "seq_tokens")) return out;
  for (const auto& e : impl_->hist[seq]) out.push_back(e.second);
  return out;
}

void Context::clear() {
  impl_->mem->clear();
  for (auto& h : impl_->hist) h.clear();
  impl_->snap_hist.clear();
  impl_->logits.clear();
  impl_->output_rows.clear();
}

Expected<int64_t> Context::snapshot(int seq) {
  Impl& I = *impl_;
  if (Status st = I.check_seq(seq, "snapshot"); !st) return to_outcome(st);
  auto id = I.mem->snapshot(seq);
  if (!id) return to_outcome(id.status());
  I.snap_hist[*id] = I.hist[seq];
  I.prune_snapshot_histories();
  return static_cast<int64_t>(*id);
}

Outcome Context::restore(int seq, int64_t snapshot_id) {
  Impl& I = *impl_;
  if (Status st = I.check_seq(seq, "restore"); !st) return to_outcome(st);
  const auto id = static_cast<uint64_t>(snapshot_id);
  auto it = I.snap_hist.find(id);
  if (snapshot_id < 0 || it == I.snap_hist.end() || I.mem->snapshot_pos(id) < 0)
    return Outcome(Errc::kNotFound, fmt::format("restore: no snapshot {} (released or evicted)", snapshot_id));
  if (Status st = I.mem->restore(seq, id); !st) return to_outcome(st);
  I.hist[seq] = it->second;
  return Outcome();
}

Outcome Context::release(int64_t snapshot_id) {
  Impl& I = *impl_;
  if (snapshot_id < 0) return Outcome(Errc::kNotFound, fmt::format("release: no snapshot {}", snapshot_id));
  if (Status st = I.mem->release(static_cast<uint64_t>(snapshot_id)); !st) return to_outcome(st);
  I.snap_hist.erase(static_cast<uint64_t>(snapshot_id));
  return Outcome();
}

}  // namespace tandem
