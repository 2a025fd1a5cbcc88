#pragma once
// GBNF grammars (the text format users of the reference engine write), parsed
// into a flat rule table the matcher (matcher.h) walks with a set of stacks.
//
// Syntax accepted:
//   name ::= alt1 | alt2        rules; names are [A-Za-z0-9_-]+; a rule body
//                               runs until the next `name ::=` or the end
//   "lit\n\x41\u00e9"           literals (escapes \n \r \t \\ \" \' \[ \] \- \xHH \uHHHH \UHHHHHHHH)
//   [a-z0-9_] [^"\\]            character classes (code point ranges, ^ negates)
//   .                           any code point
//   ( ... )                     grouping
//   x* x+ x? x{m} x{m,} x{m,n}  repetition
//   # comment                   to the end of the line
// The start rule is `root`. Undefined rules, left recursion and syntax errors
// are reported with the rule name and the line.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace tandem::grammar {

enum class ElemType : uint8_t { kEnd, kChar, kRule };

// kChar: `arg` indexes Grammar::classes; kRule: `arg` is the rule id; kEnd closes an alternative.
struct Elem {
  ElemType type = ElemType::kEnd;
  uint32_t arg = 0;
};

// A set of code points: sorted, merged, non-overlapping inclusive ranges
// (negation is folded in at parse time).
struct CharClass {
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  uint64_t ascii[2] = {0, 0};  // bitmap of code points < 128 (fast path)

  bool matches(uint32_t cp) const;
  // True when some code point in [lo, hi] is in the class.
  bool intersects(uint32_t lo, uint32_t hi) const;
  // Builds from raw ranges (any order, may overlap), negated or not.
  static CharClass make(std::vector<std::pair<uint32_t, uint32_t>> raw, bool negated);
};

struct Grammar {
  std::vector<std::string> rule_names;
  // Per rule: the element index where each alternative starts in `elems`.
  std::vector<std::vector<uint32_t>> rule_alts;
  std::vector<Elem> elems;  // alternatives, each closed by a kEnd element
  std::vector<CharClass> classes;
  uint32_t root = 0;

  int rule_id(std::string_view name) const;  // -1 when absent
};

inline constexpr uint32_t kMaxCodePoint = 0x10FFFF;

// Parses GBNF text. `what` names the source in errors (a file name, "json_schema").
Result<Grammar> parse_gbnf(std::string_view text, std::string_view what = "grammar",
                           std::string_view root = "root");

}  // namespace tandem::grammar
