// Stack-set matcher and the lazy byte automaton (see matcher.h).
#include "runtime/grammar/matcher.h"

#include <algorithm>

namespace tandem::grammar {

namespace {

// Expands rule references on top of `s` until every resulting stack has a
// character element on top or is empty; appends them to out. The grammar has
// no left recursion (checked by the parser), so this terminates.
void expand(const Grammar& g, Stack s, std::vector<Stack>& out) {
  if (s.empty()) {
    out.push_back(std::move(s));
    return;
  }
  const uint32_t pos = s.back();
  const Elem& e = g.elems[pos];
  if (e.type == ElemType::kChar) {
    out.push_back(std::move(s));
    return;
  }
  // A rule reference: replace it by its continuation, then each alternative on top.
  s.pop_back();
  if (g.elems[pos + 1].type != ElemType::kEnd) s.push_back(pos + 1);
  const auto& alts = g.rule_alts[e.arg];
  for (size_t i = 0; i < alts.size(); ++i) {
    Stack n = (i + 1 == alts.size()) ? std::move(s) : s;
    if (g.elems[alts[i]].type != ElemType::kEnd) n.push_back(alts[i]);
    expand(g, std::move(n), out);
  }
}

void normalize(std::vector<Stack>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

std::vector<Stack> advance_cp(const Grammar& g, const std::vector<Stack>& stacks, uint32_t cp) {
  std::vector<Stack> out;
  for (const Stack& s : stacks) {
    if (s.empty()) continue;
    const uint32_t pos = s.back();
    if (!g.classes[g.elems[pos].arg].matches(cp)) continue;
    Stack n(s.begin(), s.end() - 1);
    if (g.elems[pos + 1].type != ElemType::kEnd) n.push_back(pos + 1);
    expand(g, std::move(n), out);
  }
  normalize(out);
  return out;
}

// Can some stack take a code point in [lo, hi] (the characters a UTF-8 prefix
// may still become)? `len` is the character's byte count: overlong forms
// (a code point below what needs `len` bytes) and surrogates are not UTF-8.
bool any_intersects(const Grammar& g, const std::vector<Stack>& stacks, uint32_t lo, uint32_t hi, int len) {
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  lo = std::max(lo, kMin[len]);
  hi = std::min(hi, kMaxCodePoint);
  if (lo > hi) return false;
  if (lo >= 0xD800 && hi <= 0xDFFF) return false;
  for (const Stack& s : stacks)
    if (!s.empty() && g.classes[g.elems[s.back()].arg].intersects(lo, hi)) return true;
  return false;
}

bool valid_scalar(uint32_t cp, int len) {
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  return cp >= kMin[len] && cp <= kMaxCodePoint && !(cp >= 0xD800 && cp <= 0xDFFF);
}

}  // namespace

bool ParseState::can_end() const {
  if (need != 0) return false;
  for (const Stack& s : stacks)
    if (s.empty()) return true;
  return false;
}

bool ParseState::only_end() const {
  for (const Stack& s : stacks)
    if (!s.empty()) return false;
  return !stacks.empty();
}

ParseState initial_state(const Grammar& g) {
  ParseState st;
  for (uint32_t a : g.rule_alts[g.root]) {
    Stack s;
    if (g.elems[a].type != ElemType::kEnd) s.push_back(a);
    expand(g, std::move(s), st.stacks);
  }
  normalize(st.stacks);
  return st;
}

ParseState advance_byte(const Grammar& g, const ParseState& s, uint8_t b) {
  ParseState out;
  if (s.dead()) return out;
  if (s.need == 0) {
    if (b < 0x80) {
      out.stacks = advance_cp(g, s.stacks, b);
      return out;
    }
    // Lead byte: 2, 3 or 4 byte sequences (0xC0/0xC1 and > 0xF4 never start a valid one).
    int need;
    uint32_t bits;
    if (b >= 0xC2 && b <= 0xDF) need = 1, bits = b & 0x1Fu;
    else if (b >= 0xE0 && b <= 0xEF) need = 2, bits = b & 0x0Fu;
    else if (b >= 0xF0 && b <= 0xF4) need = 3, bits = b & 0x07u;
    else return out;
    const uint32_t lo = bits << (6 * need), hi = lo | ((1u << (6 * need)) - 1);
    if (!any_intersects(g, s.stacks, lo, hi, need + 1)) return out;
    out.stacks = s.stacks;
    out.partial = bits;
    out.need = static_cast<uint8_t>(need);
    out.len = static_cast<uint8_t>(need + 1);
    return out;
  }
  if ((b & 0xC0) != 0x80) return out;
  const uint32_t bits = (s.partial << 6) | (b & 0x3Fu);
  const int need = s.need - 1;
  if (need == 0) {
    if (valid_scalar(bits, s.len)) out.stacks = advance_cp(g, s.stacks, bits);
    return out;
  }
  const uint32_t lo = bits << (6 * need), hi = lo | ((1u << (6 * need)) - 1);
  if (!any_intersects(g, s.stacks, lo, hi, s.len)) return out;
  out.stacks = s.stacks;
  out.partial = bits;
  out.need = static_cast<uint8_t>(need);
  out.len = s.len;
  return out;
}

ParseState advance_bytes(const Grammar& g, ParseState s, std::string_view bytes) {
  for (char c : bytes) {
    s = advance_byte(g, s, static_cast<uint8_t>(c));
    if (s.dead()) break;
  }
  return s;
}

bool grammar_accepts(const Grammar& g, std::string_view text) {
  return advance_bytes(g, initial_state(g), text).can_end();
}

// ------------------------------------------------------------------ ByteDfa
std::string ByteDfa::key_of(const ParseState& s) {
  std::string k;
  auto put = [&k](uint32_t v) { k.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put(s.partial | (uint32_t{s.need} << 24) | (uint32_t{s.len} << 28));
  for (const Stack& st : s.stacks) {
    put(static_cast<uint32_t>(st.size()));
    for (uint32_t p : st) put(p);
  }
  return k;
}

int32_t ByteDfa::intern(const ParseState& s) {
  if (s.dead()) return kDead;
  std::string k = key_of(s);
  auto it = ids_.find(k);
  if (it != ids_.end()) return it->second;
  const auto id = static_cast<int32_t>(states_.size());
  states_.push_back(s);
  next_.emplace_back();
  next_.back().fill(kUnknown);
  ids_.emplace(std::move(k), id);
  return id;
}

int32_t ByteDfa::compute(int32_t state, uint8_t byte) {
  ParseState n = advance_byte(g_, states_[static_cast<size_t>(state)], byte);
  return intern(n);
}

void ByteDfa::clear() {
  states_.clear();
  next_.clear();
  ids_.clear();
}

}  // namespace tandem::grammar
