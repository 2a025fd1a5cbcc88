// Sequence operations (DESIGN §2.5) and snapshots. Every operation validates
// against both stores first and mutates only when it can complete, so a
// refused operation leaves memory unchanged.
#include <algorithm>
#include <climits>
#include <functional>
#include <set>

#include "memory/hybrid_impl.h"

namespace tandem::memory {

namespace {
int32_t end_of(int32_t p1) { return p1 < 0 ? INT32_MAX : p1; }
int32_t begin_of(int32_t p0) { return p0 < 0 ? 0 : p0; }
}  // namespace

void HybridMemory::Impl::drop_seq(int s) {
  if (has_attn()) {
    CellTable& cells = kv.cells();
    std::vector<int32_t> cs;
    for (const auto& [p, c] : cells.seq_cells(s)) cs.push_back(c);
    for (int32_t c : cs) cells.rm_seq(c, s);
  }
  if (has_rec()) rec.detach(s);
}

int32_t HybridMemory::Impl::next_pos(int s) const {
  if (has_rec()) {
    if (rec.seq(s).pos_max >= 0) return rec.seq(s).pos_max + 1;
    return has_attn() ? kv.cells().pos_min(s) : -1;
  }
  if (has_attn() && kv.cells().pos_max(s) >= 0) return kv.cells().pos_max(s) + 1;
  return -1;
}

// ------------------------------------------------------------------ queries

int32_t HybridMemory::seq_pos_min_attn(int s) const {
  if (s < 0 || s >= impl_->opts.n_seq_max || !impl_->has_attn()) return -1;
  return impl_->kv.cells().pos_min(s);
}
int32_t HybridMemory::seq_pos_max_attn(int s) const {
  if (s < 0 || s >= impl_->opts.n_seq_max || !impl_->has_attn()) return -1;
  return impl_->kv.cells().pos_max(s);
}
int32_t HybridMemory::seq_pos_min_rec(int s) const {
  if (s < 0 || s >= impl_->opts.n_seq_max || !impl_->has_rec()) return -1;
  return impl_->rec.seq(s).pos_min;
}
int32_t HybridMemory::seq_pos_max_rec(int s) const {
  if (s < 0 || s >= impl_->opts.n_seq_max || !impl_->has_rec()) return -1;
  return impl_->rec.seq(s).pos_max;
}
int32_t HybridMemory::seq_next_pos(int s) const {
  if (s < 0 || s >= impl_->opts.n_seq_max) return -1;
  return impl_->next_pos(s);
}
bool HybridMemory::seq_empty(int s) const {
  return seq_pos_max_attn(s) < 0 && (!impl_->has_rec() || impl_->rec.seq(s).slot < 0);
}

SeqCapabilities HybridMemory::capabilities(int s) const {
  const Impl& m = *impl_;
  SeqCapabilities c;
  c.has_attention = m.has_attn();
  c.has_recurrent = m.has_rec();
  c.truncate_any_range = !m.has_rec();
  c.truncate_suffix = true;
  c.shift = true;
  c.copy = true;
  c.snapshot_slots = m.snaps.capacity();
  c.snapshot_free = m.snaps.capacity() - m.snaps.n_used();
  if (s < 0 || s >= m.opts.n_seq_max) return c;
  for (int i = 0; i < m.snaps.capacity(); ++i)
    if (m.snaps.used(i) && m.snaps.at(i).valid.test(s)) c.restore_points.push_back(m.snaps.at(i).pos);
  std::sort(c.restore_points.begin(), c.restore_points.end());
  c.attn_pos_min = seq_pos_min_attn(s);
  c.attn_pos_max = seq_pos_max_attn(s);
  c.rec_pos_min = seq_pos_min_rec(s);
  c.rec_pos_max = seq_pos_max_rec(s);
  return c;
}

// ------------------------------------------------------------------ seq_rm

Result<RmOutcome> HybridMemory::seq_rm(int s, int32_t p0, int32_t p1) {
  Impl& m = *impl_;
  TANDEM_TRY(m.check_idle("seq_rm"));
  TANDEM_TRY(m.check_seq(s, "seq_rm"));
  const int32_t a = begin_of(p0), e = end_of(p1);
  RmOutcome out;
  if (a >= e) return out;

  enum class RecAction { kNone, kFree, kRollBack } act = RecAction::kNone;
  const RecurrentStore::SeqState st = m.has_rec() ? m.rec.seq(s) : RecurrentStore::SeqState{};
  if (m.has_rec()) {
    // The history of s spans both stores (attention may run ahead of the
    // recurrent state while a replay is pending).
    int32_t lo = st.pos_min, hi = st.pos_max;
    if (m.has_attn() && m.kv.cells().pos_max(s) >= 0) {
      lo = lo < 0 ? m.kv.cells().pos_min(s) : std::min(lo, m.kv.cells().pos_min(s));
      hi = std::max(hi, m.kv.cells().pos_max(s));
    }
    if (hi < 0 || a > hi || e <= lo) {
      act = RecAction::kNone;  // nothing of s in range
    } else if (a <= lo && e > hi) {
      act = RecAction::kFree;
    } else if (e > hi) {
      act = (st.slot >= 0 && a <= st.pos_max) ? RecAction::kRollBack : RecAction::kNone;
    } else {
      return TANDEM_ERR(kUnsupported,
                        "seq_rm({}, {}, {}): sequence {} has recurrent state over positions [{}, {}]; it "
                        "cannot drop [{}, {}) from the middle — only the whole sequence or a suffix "
                        "[p0, inf) can be removed",
                        s, p0, p1, s, lo, hi, a, e == INT32_MAX ? -1 : e);
    }
  }

  // Attention: drop cells of s in [a, e).
  if (m.has_attn()) {
    CellTable& cells = m.kv.cells();
    std::vector<int32_t> cs;
    const auto& idx = cells.seq_cells(s);
    for (auto it = idx.lower_bound(a); it != idx.end() && it->first < e; ++it) cs.push_back(it->second);
    for (int32_t c : cs) cells.rm_seq(c, s);
  }
  if (a == 0 && e == INT32_MAX) {
    m.snaps.invalidate(s);
  } else {
    m.snaps.invalidate(s, a);
  }

  if (act == RecAction::kFree) {
    m.rec.detach(s);
  } else if (act == RecAction::kRollBack) {
    const int idx = m.snaps.newest_valid(s, a - 1);
    m.rec.detach(s);
    int32_t from = st.pos_min;
    if (idx >= 0 && m.snaps.at(idx).has_state) {
      const Snapshot& sn = m.snaps.at(idx);
      const int y = m.rec.alloc_slot();  // s just released its slot: one is free
      m.rec.write_slot_raw(y, m.snaps.state(idx));
      m.rec.attach(s, y);
      m.rec.seq_mut(s).pos_min = sn.origin;
      m.rec.seq_mut(s).pos_max = sn.pos;
      m.snaps.touch(idx);
      from = sn.pos + 1;
    }
    out.replay_from = from;
    out.replay_end = std::max(from, std::min(a, st.pos_max + 1));
  }
  if (m.has_rec() && m.has_attn()) {
    // Whatever the cause (this call or an earlier one), attention cells ahead
    // of the recurrent state are positions the caller still has to replay.
    const int32_t am = m.kv.cells().pos_max(s), np = m.next_pos(s);
    if (am >= 0 && np >= 0 && np <= am) {
      out.replay_from = np;
      out.replay_end = am + 1;
    }
  }
  m.bump();
  return out;
}

// ------------------------------------------------------------------ seq_cp / seq_keep

Status HybridMemory::seq_cp(int src, int dst, int32_t p0, int32_t p1) {
  Impl& m = *impl_;
  TANDEM_TRY(m.check_idle("seq_cp"));
  TANDEM_TRY(m.check_seq(src, "seq_cp"));
  TANDEM_TRY(m.check_seq(dst, "seq_cp"));
  if (src == dst) return Status::ok();
  const int32_t a = begin_of(p0), e = end_of(p1);
  bool whole = a == 0 && e == INT32_MAX;
  if (!whole) {
    // A range that covers everything src has is a whole copy too.
    int32_t lo = INT32_MAX, hi = -1;
    if (m.has_attn() && m.kv.cells().pos_max(src) >= 0) {
      lo = m.kv.cells().pos_min(src);
      hi = m.kv.cells().pos_max(src);
    }
    if (m.has_rec() && m.rec.seq(src).slot >= 0) {
      lo = std::min(lo, m.rec.seq(src).pos_min);
      hi = std::max(hi, m.rec.seq(src).pos_max);
    }
    whole = hi < 0 || (a <= lo && e > hi);
  }
  if (!whole) {
    if (m.has_rec())
      return TANDEM_ERR(kUnsupported,
                        "seq_cp({}, {}, {}, {}): a recurrent state cannot be copied for part of a sequence; "
                        "copy the whole sequence",
                        src, dst, p0, p1);
    CellTable& cells = m.kv.cells();
    std::vector<int32_t> cs;
    const auto& idx = cells.seq_cells(src);
    for (auto it = idx.lower_bound(a); it != idx.end() && it->first < e; ++it) {
      const int other = cells.find(dst, it->first);
      if (other >= 0 && other != it->second)
        return TANDEM_ERR(kInvalidArgument,
                          "seq_cp({}, {}, {}, {}): sequence {} already has a cell at pos {}", src, dst, p0, p1,
                          dst, it->first);
      cs.push_back(it->second);
    }
    for (int32_t c : cs) cells.add_seq(c, dst);
    m.snaps.invalidate(dst, a);
    m.bump();
    return Status::ok();
  }
  m.drop_seq(dst);
  m.snaps.invalidate(dst);
  if (m.has_attn()) {
    CellTable& cells = m.kv.cells();
    std::vector<int32_t> cs;
    for (const auto& [p, c] : cells.seq_cells(src)) cs.push_back(c);
    for (int32_t c : cs) cells.add_seq(c, dst);
  }
  if (m.has_rec() && m.rec.seq(src).slot >= 0) {
    const auto st = m.rec.seq(src);
    m.rec.attach(dst, st.slot);  // shared; copied on the first write (apply)
    m.rec.seq_mut(dst).pos_min = st.pos_min;
    m.rec.seq_mut(dst).pos_max = st.pos_max;
  }
  m.snaps.copy_validity(src, dst);
  m.bump();
  return Status::ok();
}

Status HybridMemory::seq_keep(int s) {
  Impl& m = *impl_;
  TANDEM_TRY(m.check_idle("seq_keep"));
  TANDEM_TRY(m.check_seq(s, "seq_keep"));
  for (int t = 0; t < m.opts.n_seq_max; ++t)
    if (t != s) m.drop_seq(t);
  m.snaps.keep_only(s);
  m.bump();
  return Status::ok();
}

// ------------------------------------------------------------------ seq_add / seq_div

namespace {

// Moves the cells of s in [a, e) to f(pos). Cells shared with other sequences
// or pinned by snapshots are first copied to a free cell of s alone (so the
// others keep their positions and keys). Cells whose new position is < 0 are
// dropped. RoPE keys are re-rotated by (new - old).
Status move_positions(HybridMemory::Impl& m, int s, int32_t a, int32_t e, const std::function<int64_t(int32_t)>& f,
                      bool refuse_duplicates, const char* op) {
  struct Move { int32_t c, pos, np; bool shared; };
  std::vector<Move> moves;
  if (m.has_attn()) {
    CellTable& cells = m.kv.cells();
    const auto& idx = cells.seq_cells(s);
    int shared = 0;
    for (auto it = idx.lower_bound(a); it != idx.end() && it->first < e; ++it) {
      const Cell& cell = cells[it->second];
      const int64_t np = f(it->first);
      if (np > kMaxPos)
        return TANDEM_ERR(kInvalidArgument, "{}: sequence {} would get position {} > {}", op, s, np, kMaxPos);
      Move mv{it->second, it->first, static_cast<int32_t>(np < 0 ? -1 : np), cell.seq.count() > 1 || cell.pins > 0};
      if (mv.np >= 0 && mv.shared) ++shared;
      moves.push_back(mv);
    }
    if (refuse_duplicates) {
      std::set<int32_t> taken;
      for (const auto& [p, c] : idx)
        if (p < a || p >= e) taken.insert(p);
      for (const Move& mv : moves)
        if (mv.np >= 0 && !taken.insert(mv.np).second)
          return TANDEM_ERR(kInvalidArgument, "{}: sequence {} would have two cells at pos {}", op, s, mv.np);
    }
    if (shared > cells.n_free())
      return TANDEM_ERR(kOutOfMemory,
                        "{}: {} cells of sequence {} are shared with other sequences or snapshots and must be "
                        "copied before moving, but only {} cells are free",
                        op, shared, s, cells.n_free());
  }
  RecurrentStore::SeqState st;
  if (m.has_rec() && m.rec.seq(s).slot >= 0) {
    st = m.rec.seq(s);
    const int64_t nmax = st.pos_max >= a && st.pos_max < e ? f(st.pos_max) : st.pos_max;
    const int64_t nmin = st.pos_min >= a && st.pos_min < e ? f(st.pos_min) : st.pos_min;
    if (nmax > kMaxPos)
      return TANDEM_ERR(kInvalidArgument, "{}: sequence {} would get position {} > {}", op, s, nmax, kMaxPos);
    st.pos_max = static_cast<int32_t>(std::max<int64_t>(nmax, -1));
    st.pos_min = static_cast<int32_t>(std::max<int64_t>(nmin, 0));
    if (st.pos_max < 0)
      return TANDEM_ERR(kInvalidArgument, "{}: would move sequence {}'s recurrent position below 0", op, s);
    if (st.pos_min > st.pos_max) st.pos_min = st.pos_max;
  }
  // ---- mutate
  if (m.has_attn()) {
    CellTable& cells = m.kv.cells();
    for (const Move& mv : moves) {
      if (mv.np < 0) {
        cells.rm_seq(mv.c, s);
        continue;
      }
      int c = mv.c;
      if (mv.shared) {
        c = cells.find_free(0);
        SeqSet only;
        only.set(s);
        cells.occupy(c, mv.np, only);
        m.kv.copy_cell(c, mv.c);
        cells.rm_seq(mv.c, s);
      } else {
        cells.set_pos(c, mv.np);
      }
      if (mv.np != mv.pos) m.kv.shift_k(c, static_cast<float>(mv.np - mv.pos));
    }
  }
  if (m.has_rec() && m.rec.seq(s).slot >= 0) {
    m.rec.seq_mut(s).pos_min = st.pos_min;
    m.rec.seq_mut(s).pos_max = st.pos_max;
  }
  m.snaps.invalidate(s, a);
  m.bump();
  return Status::ok();
}

}  // namespace

Status HybridMemory::seq_add(int s, int32_t p0, int32_t p1, int32_t delta) {
  TANDEM_TRY(impl_->check_idle("seq_add"));
  TANDEM_TRY(impl_->check_seq(s, "seq_add"));
  const int32_t a = begin_of(p0), e = end_of(p1);
  if (delta == 0 || a >= e) return Status::ok();
  if (delta > kMaxPos || delta < -kMaxPos)
    return TANDEM_ERR(kInvalidArgument, "seq_add: shift {} out of range [-{}, {}]", delta, kMaxPos, kMaxPos);
  return move_positions(*impl_, s, a, e, [delta](int32_t p) { return int64_t(p) + delta; }, true, "seq_add");
}

Status HybridMemory::seq_div(int s, int32_t p0, int32_t p1, int d) {
  TANDEM_TRY(impl_->check_idle("seq_div"));
  TANDEM_TRY(impl_->check_seq(s, "seq_div"));
  if (d < 1) return TANDEM_ERR(kInvalidArgument, "seq_div: divisor {} must be >= 1", d);
  const int32_t a = begin_of(p0), e = end_of(p1);
  if (d == 1 || a >= e) return Status::ok();
  return move_positions(*impl_, s, a, e, [d](int32_t p) { return int64_t(p / d); }, false, "seq_div");
}

void HybridMemory::clear() {
  Impl& m = *impl_;
  m.undo_tx();
  m.snaps.clear(nullptr);
  if (m.has_attn()) m.kv.cells().clear();
  if (m.has_rec()) m.rec.clear();
  m.bump();
}

// ------------------------------------------------------------------ snapshots

Result<uint64_t> HybridMemory::snapshot(int s) {
  Impl& m = *impl_;
  TANDEM_TRY(m.check_idle("snapshot"));
  TANDEM_TRY(m.check_seq(s, "snapshot"));
  if (m.snaps.capacity() == 0)
    return TANDEM_ERR(kUnsupported, "snapshot of sequence {}: snapshots are disabled (snapshot_slots = 0)", s);
  Snapshot sn;
  if (m.has_rec()) {
    sn.pos = m.rec.seq(s).pos_max;
    sn.origin = m.rec.seq(s).pos_min;
    sn.has_state = true;
  } else {
    sn.pos = m.kv.cells().pos_max(s);
    sn.origin = m.kv.cells().pos_min(s);
  }
  if (sn.pos < 0) return TANDEM_ERR(kInvalidArgument, "snapshot: sequence {} is empty", s);
  CellTable& cells = m.kv.cells();
  const int idx = m.snaps.acquire(cells);
  if (m.has_attn()) {
    for (const auto& [p, c] : cells.seq_cells(s)) {
      if (p > sn.pos) break;
      sn.cells.push_back(c);
      cells.pin(c);
    }
  }
  if (sn.has_state) m.rec.read_slot_raw(m.rec.seq(s).slot, m.snaps.state(idx));
  sn.valid.set(s);
  const uint64_t id = m.snaps.install(idx, std::move(sn));
  m.bump();
  return id;
}

Status HybridMemory::restore(int s, uint64_t id) {
  Impl& m = *impl_;
  TANDEM_TRY(m.check_idle("restore"));
  TANDEM_TRY(m.check_seq(s, "restore"));
  const int idx = m.snaps.find(id);
  if (idx < 0) return TANDEM_ERR(kNotFound, "restore: snapshot {} does not exist (released or evicted)", id);
  m.drop_seq(s);
  m.snaps.invalidate(s);
  Snapshot& sn = m.snaps.at(idx);
  if (m.has_attn())
    for (int32_t c : sn.cells) m.kv.cells().add_seq(c, s);
  if (sn.has_state) {
    const int y = m.rec.alloc_slot();
    m.rec.write_slot_raw(y, m.snaps.state(idx));
    m.rec.attach(s, y);
    m.rec.seq_mut(s).pos_min = sn.origin;
    m.rec.seq_mut(s).pos_max = sn.pos;
  }
  sn.valid.set(s);
  m.snaps.touch(idx);
  m.bump();
  return Status::ok();
}

Status HybridMemory::release(uint64_t id) {
  Impl& m = *impl_;
  TANDEM_TRY(m.check_idle("release"));
  const int idx = m.snaps.find(id);
  if (idx < 0) return TANDEM_ERR(kNotFound, "release: snapshot {} does not exist (released or evicted)", id);
  m.snaps.release(idx, m.kv.cells());
  m.bump();
  return Status::ok();
}

int32_t HybridMemory::snapshot_pos(uint64_t id) const {
  const int idx = impl_->snaps.find(id);
  return idx < 0 ? -1 : impl_->snaps.at(idx).pos;
}

}  // namespace tandem::memory
