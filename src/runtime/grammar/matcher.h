#pragma once
// The grammar matcher: a set of pushdown stacks over the flat rule table of a
// Grammar (gbnf.h), advanced one code point at a time, plus a lazily built
// byte-level automaton over those stack sets so token masking costs one table
// lookup per trie edge once a state has been seen.
//
// A stack holds element positions (indices into Grammar::elems); its top is
// the next thing to match. Stacks are kept "normalized": the top is a kChar
// element, or the stack is empty (the root rule is complete). The set of all
// stacks reachable after the input so far is the parse state; it is empty
// when the input cannot be a prefix of any string of the grammar.
//
// Bytes are matched as UTF-8: a state also carries the code point bits of an
// unfinished multi-byte character, and is alive only while some stack's top
// class holds a code point that starts with those bytes.
#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/grammar/gbnf.h"

namespace tandem::grammar {

using Stack = std::vector<uint32_t>;

struct ParseState {
  std::vector<Stack> stacks;  // sorted, unique, normalized
  uint32_t partial = 0;       // bits of an unfinished UTF-8 character
  uint8_t need = 0;           // continuation bytes still missing (0: none)
  uint8_t len = 0;            // total bytes of that character (2..4)

  bool dead() const { return stacks.empty(); }
  // The input so far is a complete string of the grammar.
  bool can_end() const;
  // No stack can take another character (only the end is possible).
  bool only_end() const;
};

// The state before any input.
ParseState initial_state(const Grammar& g);
// The state after one more byte (dead when the byte cannot continue).
ParseState advance_byte(const Grammar& g, const ParseState& s, uint8_t byte);
// The state after a whole string of bytes.
ParseState advance_bytes(const Grammar& g, ParseState s, std::string_view bytes);
// True when `text` is a complete string of the grammar.
bool grammar_accepts(const Grammar& g, std::string_view text);

// Byte automaton over interned parse states, built on demand.
class ByteDfa {
 public:
  static constexpr int32_t kDead = -1;
  explicit ByteDfa(const Grammar& g) : g_(g) {}

  int32_t intern(const ParseState& s);
  int32_t next(int32_t state, uint8_t byte) {
    const int32_t t = next_[static_cast<size_t>(state)][byte];
    if (t != kUnknown) return t;
    const int32_t n = compute(state, byte);  // may grow next_: index again after it
    next_[static_cast<size_t>(state)][byte] = n;
    return n;
  }
  const ParseState& state(int32_t id) const { return states_[static_cast<size_t>(id)]; }
  size_t size() const { return states_.size(); }
  void clear();

 private:
  static constexpr int32_t kUnknown = -2;
  int32_t compute(int32_t state, uint8_t byte);
  static std::string key_of(const ParseState& s);

  const Grammar& g_;
  std::vector<ParseState> states_;
  std::vector<std::array<int32_t, 256>> next_;
  std::unordered_map<std::string, int32_t> ids_;
};

}  // namespace tandem::grammar
