#include "memory/snapshots.h"

namespace tandem::memory {

SnapshotPool::SnapshotPool(int capacity, size_t state_bytes)
    : state_bytes_(state_bytes), entries_(capacity) {
  states_.resize(size_t(capacity) * state_bytes);
}

int SnapshotPool::n_used() const {
  int n = 0;
  for (const auto& e : entries_) n += e.has_value();
  return n;
}

int SnapshotPool::find(uint64_t id) const {
  for (int i = 0; i < capacity(); ++i)
    if (entries_[i] && entries_[i]->id == id) return i;
  return -1;
}

int SnapshotPool::acquire(CellTable& cells) {
  int lru = -1;
  for (int i = 0; i < capacity(); ++i) {
    if (!entries_[i]) return i;
    if (lru < 0 || entries_[i]->last_use < entries_[lru]->last_use) lru = i;
  }
  if (lru >= 0) release(lru, cells);
  return lru;
}

uint64_t SnapshotPool::install(int idx, Snapshot snap) {
  snap.id = next_id_++;
  snap.last_use = ++clock_;
  entries_[idx] = std::move(snap);
  return entries_[idx]->id;
}

void SnapshotPool::release(int idx, CellTable& cells) {
  if (!entries_[idx]) return;
  for (int32_t c : entries_[idx]->cells) cells.unpin(c);
  entries_[idx].reset();
}

int SnapshotPool::newest_valid(int s, int32_t max_pos) const {
  int best = -1;
  for (int i = 0; i < capacity(); ++i) {
    const auto& e = entries_[i];
    if (!e || !e->valid.test(s) || e->pos > max_pos) continue;
    if (best < 0 || e->pos > entries_[best]->pos ||
        (e->pos == entries_[best]->pos && e->last_use > entries_[best]->last_use))
      best = i;
  }
  return best;
}

void SnapshotPool::invalidate(int s, int32_t from_pos) {
  for (auto& e : entries_)
    if (e && e->pos >= from_pos) e->valid.reset(s);
}

void SnapshotPool::copy_validity(int src, int dst) {
  for (auto& e : entries_)
    if (e) e->valid.set(dst, e->valid.test(src));
}

void SnapshotPool::keep_only(int s) {
  for (auto& e : entries_) {
    if (!e) continue;
    bool v = e->valid.test(s);
    e->valid.reset();
    e->valid.set(s, v);
  }
}

void SnapshotPool::clear(CellTable* cells) {
  for (int i = 0; i < capacity(); ++i) {
    if (cells) {
      release(i, *cells);
    } else {
      entries_[i].reset();
    }
  }
}

}  // namespace tandem::memory
