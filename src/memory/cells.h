#pragma once
// Attention cell metadata: for each of the n_ctx cells its position, the set of
// sequences that use it and the number of snapshots that pin it. A cell is free
// when no sequence uses it and no snapshot pins it. A per-sequence index
// (position -> cell) answers pos_min/pos_max/find in O(log n).
//
// Mutations can be journaled: between begin_journal() and end_journal() the old
// metadata of each cell is recorded the first time it changes, so
// undo_journal() restores the table exactly (used by the all-or-nothing decode).
#include <bitset>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "memory/hybrid_memory.h"

namespace tandem::memory {

using SeqSet = std::bitset<kMaxSeq>;

struct Cell {
  int32_t pos = -1;   // -1 when free
  int32_t pins = 0;   // snapshots referencing this cell
  SeqSet seq;         // sequences using this cell
  bool is_free() const { return seq.none() && pins == 0; }
  bool operator==(const Cell& o) const { return pos == o.pos && pins == o.pins && seq == o.seq; }
};

class CellTable {
 public:
  CellTable() = default;
  CellTable(int n_ctx, int n_seq_max);

  int size() const { return static_cast<int>(cells_.size()); }
  int n_seq_max() const { return n_seq_max_; }
  const Cell& operator[](int c) const { return cells_[c]; }
  int n_used() const { return n_used_; }
  int n_free() const { return size() - n_used_; }
  // One past the highest non-free cell: attention only needs to look at [0, used_end).
  int used_end() const { return used_end_; }

  // pos -> cell for sequence s (several cells may share a position after seq_div).
  const std::multimap<int32_t, int32_t>& seq_cells(int s) const { return index_[s]; }
  int32_t pos_min(int s) const { return index_[s].empty() ? -1 : index_[s].begin()->first; }
  int32_t pos_max(int s) const { return index_[s].empty() ? -1 : index_[s].rbegin()->first; }
  int n_cells_of(int s) const { return static_cast<int>(index_[s].size()); }
  int find(int s, int32_t pos) const;  // a cell of s at pos, -1 if none
  int find_free(int from) const;       // first free cell >= from, -1 if none

  // ---- mutations (journaled when a journal is open)
  void occupy(int c, int32_t pos, const SeqSet& seqs);  // c must be free
  void add_seq(int c, int s);                           // c must be in use
  void rm_seq(int c, int s);                            // frees c when nothing remains
  void set_pos(int c, int32_t pos);
  void pin(int c);
  void unpin(int c);
  void clear();
  // Replace everything (state-file load). Cells must be consistent (checked by the caller).
  void assign(std::vector<Cell> cells);

  void begin_journal();
  void end_journal();   // forget the undo records
  void undo_journal();  // restore and close
  bool journaling() const { return journal_open_; }

 private:
  void record(int c);
  void index_add(int c, int s);
  void index_rm(int c, int s);
  void on_freed(int c);
  void on_used(int c);
  void rebuild();

  int n_seq_max_ = 0;
  std::vector<Cell> cells_;
  std::vector<std::multimap<int32_t, int32_t>> index_;  // [n_seq_max]
  int n_used_ = 0;
  int used_end_ = 0;

  bool journal_open_ = false;
  uint64_t epoch_ = 1;
  std::vector<uint64_t> touched_;              // [n_ctx] epoch of last record
  std::vector<std::pair<int32_t, Cell>> undo_;
};

}  // namespace tandem::memory
