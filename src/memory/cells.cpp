#include "memory/cells.h"

#include <cassert>

namespace tandem::memory {

CellTable::CellTable(int n_ctx, int n_seq_max)
    : n_seq_max_(n_seq_max), cells_(n_ctx), index_(n_seq_max), touched_(n_ctx, 0) {}

int CellTable::find(int s, int32_t pos) const {
  auto it = index_[s].find(pos);
  return it == index_[s].end() ? -1 : it->second;
}

int CellTable::find_free(int from) const {
  for (int c = from < 0 ? 0 : from; c < size(); ++c)
    if (cells_[c].is_free()) return c;
  return -1;
}

void CellTable::record(int c) {
  if (!journal_open_ || touched_[c] == epoch_) return;
  touched_[c] = epoch_;
  undo_.emplace_back(c, cells_[c]);
}

void CellTable::index_add(int c, int s) { index_[s].emplace(cells_[c].pos, c); }

void CellTable::index_rm(int c, int s) {
  auto [lo, hi] = index_[s].equal_range(cells_[c].pos);
  for (auto it = lo; it != hi; ++it) {
    if (it->second == c) {
      index_[s].erase(it);
      return;
    }
  }
  assert(false && "cell missing from the sequence index");
}

void CellTable::on_used(int c) {
  ++n_used_;
  if (c + 1 > used_end_) used_end_ = c + 1;
}

void CellTable::on_freed(int c) {
  cells_[c].pos = -1;
  --n_used_;
  while (used_end_ > 0 && cells_[used_end_ - 1].is_free()) --used_end_;
}

void CellTable::occupy(int c, int32_t pos, const SeqSet& seqs) {
  assert(cells_[c].is_free());
  record(c);
  cells_[c].pos = pos;
  cells_[c].seq = seqs;
  for (int s = 0; s < n_seq_max_; ++s)
    if (seqs.test(s)) index_add(c, s);
  on_used(c);
}

void CellTable::add_seq(int c, int s) {
  assert(!cells_[c].is_free());
  if (cells_[c].seq.test(s)) return;
  record(c);
  cells_[c].seq.set(s);
  index_add(c, s);
}

void CellTable::rm_seq(int c, int s) {
  if (!cells_[c].seq.test(s)) return;
  record(c);
  index_rm(c, s);
  cells_[c].seq.reset(s);
  if (cells_[c].is_free()) on_freed(c);
}

void CellTable::set_pos(int c, int32_t pos) {
  assert(!cells_[c].is_free());
  if (cells_[c].pos == pos) return;
  record(c);
  for (int s = 0; s < n_seq_max_; ++s)
    if (cells_[c].seq.test(s)) index_rm(c, s);
  cells_[c].pos = pos;
  for (int s = 0; s < n_seq_max_; ++s)
    if (cells_[c].seq.test(s)) index_add(c, s);
}

void CellTable::pin(int c) {
  assert(!cells_[c].is_free());
  record(c);
  ++cells_[c].pins;
}

void CellTable::unpin(int c) {
  assert(cells_[c].pins > 0);
  record(c);
  --cells_[c].pins;
  if (cells_[c].is_free()) on_freed(c);
}

void CellTable::clear() {
  assert(!journal_open_);
  for (auto& c : cells_) c = Cell{};
  for (auto& m : index_) m.clear();
  n_used_ = 0;
  used_end_ = 0;
}

void CellTable::assign(std::vector<Cell> cells) {
  assert(!journal_open_ && cells.size() == cells_.size());
  cells_ = std::move(cells);
  rebuild();
}

void CellTable::rebuild() {
  for (auto& m : index_) m.clear();
  n_used_ = 0;
  used_end_ = 0;
  for (int c = 0; c < size(); ++c) {
    if (cells_[c].is_free()) {
      cells_[c].pos = -1;
      continue;
    }
    ++n_used_;
    used_end_ = c + 1;
    for (int s = 0; s < n_seq_max_; ++s)
      if (cells_[c].seq.test(s)) index_add(c, s);
  }
}

void CellTable::begin_journal() {
  assert(!journal_open_);
  journal_open_ = true;
  ++epoch_;
  undo_.clear();
}

void CellTable::end_journal() {
  journal_open_ = false;
  undo_.clear();
}

void CellTable::undo_journal() {
  for (auto& [c, old] : undo_) cells_[c] = old;
  journal_open_ = false;
  undo_.clear();
  rebuild();
}

}  // namespace tandem::memory
