// Byte-level BPE ("gpt2" vocabularies): pre-tokenize the text into pieces, then
// inside each piece start from one symbol per byte (the token of the byte's
// GPT-2 alphabet character) and repeatedly apply the lowest-ranked merge among
// adjacent pairs (ties: leftmost). Merges are keyed by symbol ids, so no strings
// are built in the hot loop.
#include <algorithm>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace tandem {
namespace {

struct Sym {
  int prev, next;
  int32_t id;           // interned symbol id (vocab id, or >= n_vocab for non-vocab merges)
  uint32_t start, len;  // byte span in the piece
};

struct Pair {
  int32_t rank;
  int left, right;
  int32_t left_id, right_id, merged;
};

struct PairGreater {
  // priority_queue pops the greatest: so "greater" = worse = higher rank / further right.
  bool operator()(const Pair& a, const Pair& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

void Tokenizer::encode_bpe(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<std::string_view> pieces;
  pre_->split(text, pieces);
  for (std::string_view w : pieces) bpe_word(w, out);
}

void Tokenizer::bpe_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    std::string enc;
    for (char c : word) enc += byte_to_unicode_utf8(static_cast<uint8_t>(c));
    if (int32_t id = find_token(enc); id != kNull) {
      out.push_back(id);
      return;
    }
  }
  if (word.size() == 1) {
    int32_t id = byte_token_[static_cast<uint8_t>(word[0])];
    if (id != kNull) out.push_back(id);
    return;
  }
  thread_local std::vector<Sym> syms;
  thread_local std::vector<Pair> heap;  // min-heap by (rank, left) via PairGreater
  syms.clear();
  heap.clear();
  const int n = static_cast<int>(word.size());
  for (int i = 0; i < n; ++i) {
    syms.push_back({i - 1, i + 1 == n ? -1 : i + 1, byte_token_[static_cast<uint8_t>(word[i])],
                    static_cast<uint32_t>(i), 1u});
  }
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    int32_t a = syms[l].id, b = syms[r].id;
    if (a < 0 || b < 0) return;
    const MergeTable::Entry* m = merges_.find(MergeTable::key(a, b));
    if (m == nullptr) return;
    heap.push_back({m->rank, l, r, a, b, m->merged});
    std::push_heap(heap.begin(), heap.end(), PairGreater{});
  };
  for (int i = 1; i < n; ++i) try_add(i - 1, i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), PairGreater{});
    Pair p = heap.back();
    heap.pop_back();
    Sym& l = syms[p.left];
    Sym& r = syms[p.right];
    // Stale if either side was merged away or changed since the pair was queued.
    if (l.len == 0 || r.len == 0 || l.id != p.left_id || r.id != p.right_id || l.next != p.right) continue;
    l.len += r.len;
    l.id = p.merged;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = p.left;
    try_add(l.prev, p.left);
    try_add(p.left, l.next);
  }
  const int32_t nv = n_vocab();
  for (int i = 0; i != -1; i = syms[i].next) {
    const Sym& s = syms[i];
    if (s.id >= 0 && s.id < nv) {
      out.push_back(s.id);
      continue;
    }
    // A merge result outside the vocabulary (malformed merges): fall back to bytes.
    for (uint32_t k = s.start; k < s.start + s.len; ++k) {
      int32_t b = byte_token_[static_cast<uint8_t>(word[k])];
      if (b != kNull) out.push_back(b);
    }
  }
}

}  // namespace tandem
