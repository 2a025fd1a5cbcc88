#pragma once
// Open-addressing hash table for BPE merges: (left id, right id) -> (rank,
// merged id). Lookups sit in the innermost loop of byte-level BPE, where
// std::unordered_map's node chasing dominated the profile.
#include <cstdint>
#include <vector>

namespace tandem {

class MergeTable {
 public:
  struct Entry {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    int32_t merged = 0;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  static uint64_t key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }

  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Entry{});
    mask_ = cap - 1;
    size_ = 0;
  }

  // Keeps the first (lowest-rank) entry for a key, like the reference tokenizers.
  void insert(uint64_t k, int32_t rank, int32_t merged) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    for (size_t i = slot(k);; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return;
      if (slots_[i].key == kEmpty) {
        slots_[i] = Entry{k, rank, merged};
        ++size_;
        return;
      }
    }
  }

  const Entry* find(uint64_t k) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = slot(k);; i = (i + 1) & mask_) {
      const Entry& e = slots_[i];
      if (e.key == k) return &e;
      if (e.key == kEmpty) return nullptr;
    }
  }

  size_t size() const { return size_; }

 private:
  size_t slot(uint64_t k) const { return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> 20) & mask_; }
  void grow() {
    std::vector<Entry> old;
    old.swap(slots_);
    reserve(old.empty() ? 8 : old.size());
    for (const Entry& e : old) {
      if (e.key != kEmpty) insert(e.key, e.rank, e.merged);
    }
  }

  std::vector<Entry> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace tandem
