#pragma once
// The bounded snapshot pool (DESIGN §2.5/§2.7). A snapshot of sequence s at
// position p is a copy of its recurrent slot (when the model has recurrent
// layers and the state is not empty) plus references (pins) to its attention
// cells with pos <= p. `valid` is the set of sequences whose current history
// still starts with the snapshot's history: those may be rolled back to it by
// a suffix seq_rm. When the pool is full the least recently used snapshot is
// evicted.
#include <cstdint>
#include <optional>
#include <vector>

#include "core/aligned.h"
#include "memory/cells.h"

namespace tandem::memory {

struct Snapshot {
  uint64_t id = 0;
  int32_t pos = -1;      // last position summarised
  int32_t origin = -1;   // first position of the history (recurrent pos_min / attention pos_min)
  bool has_state = false;
  std::vector<int32_t> cells;  // pinned attention cells (ascending pos)
  SeqSet valid;
  uint64_t last_use = 0;
};

class SnapshotPool {
 public:
  SnapshotPool() = default;
  // state_bytes: one recurrent slot in the store's storage type (f32 or bf16).
  SnapshotPool(int capacity, size_t state_bytes);

  int capacity() const { return static_cast<int>(entries_.size()); }
  int n_used() const;
  size_t state_bytes() const { return state_bytes_; }

  // Index of snapshot `id`, -1 if unknown.
  int find(uint64_t id) const;
  Snapshot& at(int idx) { return *entries_[idx]; }
  const Snapshot& at(int idx) const { return *entries_[idx]; }
  bool used(int idx) const { return entries_[idx].has_value(); }
  uint8_t* state(int idx) { return states_.as<uint8_t>() + size_t(idx) * state_bytes_; }
  const uint8_t* state(int idx) const { return states_.as<uint8_t>() + size_t(idx) * state_bytes_; }

  // A free entry, or the least recently used one after evicting it (its cells
  // unpinned in `cells`). -1 if capacity is 0.
  int acquire(CellTable& cells);
  // Fill entry idx (from acquire) and return its id.
  uint64_t install(int idx, Snapshot snap);
  void release(int idx, CellTable& cells);
  void touch(int idx) { entries_[idx]->last_use = ++clock_; }

  // Newest (highest pos) snapshot valid for s with pos <= max_pos, -1 if none.
  int newest_valid(int s, int32_t max_pos) const;
  // Remove s from the valid sets: all snapshots, or those with pos >= from_pos.
  void invalidate(int s, int32_t from_pos = -1);
  // dst becomes valid wherever src is.
  void copy_validity(int src, int dst);
  void keep_only(int s);

  void clear(CellTable* cells);

  // State-file support.
  uint64_t next_id() const { return next_id_; }
  uint64_t clock() const { return clock_; }
  void set_counters(uint64_t next_id, uint64_t clock) { next_id_ = next_id; clock_ = clock; }
  void put(int idx, Snapshot snap) { entries_[idx] = std::move(snap); }

 private:
  size_t state_bytes_ = 0;
  AlignedBuffer states_;  // [capacity][state_bytes]
  std::vector<std::optional<Snapshot>> entries_;
  uint64_t next_id_ = 1;
  uint64_t clock_ = 0;
};

}  // namespace tandem::memory
