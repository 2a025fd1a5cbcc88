// SentencePiece-style BPE ("llama" vocabularies). The text arrives with spaces
// already escaped to U+2581. Start from one symbol per UTF-8 character and keep
// merging the adjacent pair whose concatenation is the vocabulary token with the
// highest score (ties: leftmost pair). Symbols that never became a token are
// emitted as <0xNN> byte tokens.
#include <queue>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace tandem {
namespace {

struct Sym {
  int prev, next;
  uint32_t start, len;  // byte span in the text
};

struct Pair {
  int left, right;
  float score;
  uint32_t len;  // combined byte length when queued (detects stale entries)
};

struct PairLess {
  // priority_queue pops the greatest: highest score, then smallest left index.
  bool operator()(const Pair& a, const Pair& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

int32_t Tokenizer::spm_byte_token(uint8_t b) const { return byte_token_[b]; }

void Tokenizer::encode_spm(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  std::vector<Sym> syms;
  syms.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    size_t len = std::min(utf8_len(static_cast<uint8_t>(text[off])), text.size() - off);
    int idx = static_cast<int>(syms.size());
    syms.push_back({idx - 1, off + len == text.size() ? -1 : idx + 1, static_cast<uint32_t>(off),
                    static_cast<uint32_t>(len)});
    off += len;
  }
  std::priority_queue<Pair, std::vector<Pair>, PairLess> queue;
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    std::string_view s = text.substr(syms[l].start, syms[l].len + syms[r].len);
    int32_t id = find_token(s);
    if (id == kNull) return;
    queue.push({l, r, scores_[id], static_cast<uint32_t>(s.size())});
  };
  for (int i = 1; i < static_cast<int>(syms.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    Pair p = queue.top();
    queue.pop();
    Sym& l = syms[p.left];
    Sym& r = syms[p.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != p.len) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = p.left;
    try_add(l.prev, p.left);
    try_add(p.left, l.next);
  }

  for (int i = 0; i != -1; i = syms[i].next) {
    std::string_view s = text.substr(syms[i].start, syms[i].len);
    int32_t id = find_token(s);
    if (id != kNull) {
      out.push_back(id);
      continue;
    }
    for (char c : s) {
      int32_t b = spm_byte_token(static_cast<uint8_t>(c));
      if (b != kNull) out.push_back(b);
    }
  }
}

}  // namespace tandem
