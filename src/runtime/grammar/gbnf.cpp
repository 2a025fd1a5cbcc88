// GBNF parser (see gbnf.h): text -> flat rule table, then checks for undefined
// rules and left recursion (which would make the stack expansion loop).
#include "runtime/grammar/gbnf.h"

#include <algorithm>
#include <functional>
#include <map>
#include <unordered_map>

#include "core/utf8.h"

namespace tandem::grammar {

// ------------------------------------------------------------------ CharClass
CharClass CharClass::make(std::vector<std::pair<uint32_t, uint32_t>> raw, bool negated) {
  std::sort(raw.begin(), raw.end());
  std::vector<std::pair<uint32_t, uint32_t>> merged;
  for (auto [lo, hi] : raw) {
    if (lo > hi) std::swap(lo, hi);
    if (!merged.empty() && lo <= merged.back().second + 1)
      merged.back().second = std::max(merged.back().second, hi);
    else
      merged.emplace_back(lo, hi);
  }
  CharClass c;
  if (!negated) {
    c.ranges = std::move(merged);
  } else {
    uint32_t next = 0;  // first code point not yet covered
    for (auto [lo, hi] : merged) {
      if (lo > next) c.ranges.emplace_back(next, lo - 1);
      next = hi + 1;
    }
    if (next <= kMaxCodePoint) c.ranges.emplace_back(next, kMaxCodePoint);
  }
  for (auto [lo, hi] : c.ranges)
    for (uint32_t cp = lo; cp <= std::min<uint32_t>(hi, 127); ++cp) c.ascii[cp >> 6] |= uint64_t{1} << (cp & 63);
  return c;
}

bool CharClass::matches(uint32_t cp) const {
  if (cp < 128) return (ascii[cp >> 6] >> (cp & 63)) & 1;
  // Ranges are sorted: the last range starting at or before cp decides.
  auto it = std::upper_bound(ranges.begin(), ranges.end(), cp,
                             [](uint32_t v, const std::pair<uint32_t, uint32_t>& r) { return v < r.first; });
  if (it == ranges.begin()) return false;
  --it;
  return cp <= it->second;
}

bool CharClass::intersects(uint32_t lo, uint32_t hi) const {
  for (const auto& [a, b] : ranges)
    if (a <= hi && b >= lo) return true;
  return false;
}

int Grammar::rule_id(std::string_view name) const {
  for (size_t i = 0; i < rule_names.size(); ++i)
    if (rule_names[i] == name) return static_cast<int>(i);
  return -1;
}

namespace {

constexpr int kMaxRepeat = 1000;  // {m,n} bounds above this are refused (the expansion is linear in n)

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

using Seq = std::vector<Elem>;

class Parser {
 public:
  Parser(std::string_view src, std::string_view what) : src_(src), what_(what) {}

  Result<Grammar> run(std::string_view root_name) {
    skip_ws();
    if (pos_ >= src_.size()) return fail("the grammar is empty (no rules)");
    while (pos_ < src_.size()) {
      const size_t start = pos_;
      std::string name = read_name();
      if (name.empty()) return fail(fmt::format("expected a rule name, found '{}'", excerpt()));
      skip_spaces();
      if (src_.substr(pos_, 3) != "::=") return fail(fmt::format("expected '::=' after rule name '{}'", name));
      pos_ += 3;
      const uint32_t id = rule(name, start);
      if (defined_[id]) return fail(fmt::format("rule '{}' is defined twice", name));
      defined_[id] = true;
      std::vector<Seq> alts;
      TANDEM_TRY(parse_alternates(name, alts, /*nested=*/false));
      rules_[id] = std::move(alts);
      skip_ws();
    }
    for (size_t i = 0; i < names_.size(); ++i)
      if (!defined_[i])
        return TANDEM_ERR(kInvalidArgument, "{}: line {}: rule '{}' is used but not defined", what_,
                          line_of(first_use_[i]), names_[i]);
    auto root = ids_.find(std::string(root_name));
    if (root == ids_.end()) return TANDEM_ERR(kInvalidArgument, "{}: no '{}' rule (the start rule)", what_, root_name);

    Grammar g;
    g.rule_names = names_;
    g.classes = std::move(classes_);
    g.root = root->second;
    g.rule_alts.resize(rules_.size());
    for (size_t r = 0; r < rules_.size(); ++r) {
      for (const Seq& alt : rules_[r]) {
        g.rule_alts[r].push_back(static_cast<uint32_t>(g.elems.size()));
        g.elems.insert(g.elems.end(), alt.begin(), alt.end());
        g.elems.push_back({ElemType::kEnd, 0});
      }
    }
    TANDEM_TRY(check_left_recursion(g));
    return g;
  }

 private:
  Status fail(const std::string& msg) const {
    return TANDEM_ERR(kInvalidArgument, "{}: line {}: {}", what_, line_of(pos_), msg);
  }
  int line_of(size_t p) const {
    return 1 + static_cast<int>(std::count(src_.begin(), src_.begin() + static_cast<long>(std::min(p, src_.size())), '\n'));
  }
  std::string excerpt() const {
    std::string s(src_.substr(pos_, 12));
    const auto nl = s.find('\n');
    return nl == std::string::npos ? s : s.substr(0, nl);
  }

  uint32_t rule(const std::string& name, size_t where) {
    auto it = ids_.find(name);
    if (it != ids_.end()) return it->second;
    const auto id = static_cast<uint32_t>(names_.size());
    ids_.emplace(name, id);
    names_.push_back(name);
    rules_.emplace_back();
    defined_.push_back(false);
    first_use_.push_back(where);
    return id;
  }
  uint32_t synth(const std::string& base, std::vector<Seq> alts) {
    std::string name;
    do name = fmt::format("{}-{}", base, ++n_synth_); while (ids_.count(name));
    const uint32_t id = rule(name, pos_);
    defined_[id] = true;
    rules_[id] = std::move(alts);
    return id;
  }
  uint32_t add_class(std::vector<std::pair<uint32_t, uint32_t>> ranges, bool negated) {
    auto key = std::make_pair(ranges, negated);
    auto it = class_ids_.find(key);
    if (it != class_ids_.end()) return it->second;
    const auto id = static_cast<uint32_t>(classes_.size());
    classes_.push_back(CharClass::make(ranges, negated));
    class_ids_.emplace(std::move(key), id);
    return id;
  }

  void skip_spaces() {
    while (pos_ < src_.size() && (src_[pos_] == ' ' || src_[pos_] == '\t')) ++pos_;
  }
  void skip_ws() {
    while (pos_ < src_.size()) {
      const char c = src_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < src_.size() && src_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }
  std::string read_name() {
    const size_t s = pos_;
    while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
    return std::string(src_.substr(s, pos_ - s));
  }
  // At `name ::=` (the start of the next rule)?
  bool at_rule_start() {
    const size_t save = pos_;
    const bool named = !read_name().empty();
    skip_spaces();
    const bool yes = named && src_.substr(pos_, 3) == "::=";
    pos_ = save;
    return yes;
  }

  // One UTF-8 code point of the source text, or an escape.
  Result<uint32_t> read_char() {
    if (pos_ >= src_.size()) return fail("unexpected end of the grammar");
    auto c = static_cast<unsigned char>(src_[pos_]);
    if (c == '\\') {
      if (pos_ + 1 >= src_.size()) return fail("unfinished escape at the end");
      const char e = src_[pos_ + 1];
      pos_ += 2;
      switch (e) {
        case 'n': return uint32_t{'\n'};
        case 'r': return uint32_t{'\r'};
        case 't': return uint32_t{'\t'};
        case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/': return uint32_t(static_cast<unsigned char>(e));
        case 'x': case 'u': case 'U': {
          const int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t v = 0;
          for (int i = 0; i < n; ++i, ++pos_) {
            if (pos_ >= src_.size()) return fail(fmt::format("'\\{}' needs {} hex digits", e, n));
            const char h = src_[pos_];
            const int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
            if (d < 0) return fail(fmt::format("'\\{}' needs {} hex digits, found '{}'", e, n, h));
            v = v * 16 + static_cast<uint32_t>(d);
          }
          if (v > kMaxCodePoint) return fail(fmt::format("code point U+{:X} is beyond U+10FFFF", v));
          return v;
        }
        default: return fail(fmt::format("unknown escape '\\{}'", e));
      }
    }
    uint32_t v = 0;
    const size_t n = utf8_decode(src_, pos_, &v);
    if (v == kUtf8Invalid) return fail("the grammar text is not valid UTF-8");
    pos_ += n;
    return v;
  }

  Status parse_alternates(const std::string& name, std::vector<Seq>& alts, bool nested) {
    for (;;) {
      Seq seq;
      TANDEM_TRY(parse_sequence(name, seq, nested));
      alts.push_back(std::move(seq));
      skip_ws();
      if (pos_ < src_.size() && src_[pos_] == '|') {
        ++pos_;
        continue;
      }
      return Status::ok();
    }
  }

  Status parse_sequence(const std::string& name, Seq& seq, bool nested) {
    for (;;) {
      skip_ws();
      if (pos_ >= src_.size()) {
        if (nested) return fail(fmt::format("missing ')' in rule '{}'", name));
        return Status::ok();
      }
      const char c = src_[pos_];
      if (c == '|') return Status::ok();
      if (c == ')') {
        if (!nested) return fail(fmt::format("unmatched ')' in rule '{}'", name));
        return Status::ok();
      }
      Seq item;
      if (c == '"' || c == '\'') {
        ++pos_;
        while (pos_ < src_.size() && src_[pos_] != c) {
          TANDEM_ASSIGN_OR_RETURN(uint32_t cp, read_char());
          item.push_back({ElemType::kChar, add_class({{cp, cp}}, false)});
        }
        if (pos_ >= src_.size()) return fail(fmt::format("unterminated string literal in rule '{}'", name));
        ++pos_;
        if (item.empty()) continue;  // "" matches the empty string
      } else if (c == '[') {
        ++pos_;
        bool negated = false;
        if (pos_ < src_.size() && src_[pos_] == '^') negated = true, ++pos_;
        std::vector<std::pair<uint32_t, uint32_t>> ranges;
        while (pos_ < src_.size() && src_[pos_] != ']') {
          TANDEM_ASSIGN_OR_RETURN(uint32_t lo, read_char());
          uint32_t hi = lo;
          if (pos_ + 1 < src_.size() && src_[pos_] == '-' && src_[pos_ + 1] != ']') {
            ++pos_;
            TANDEM_ASSIGN_OR_RETURN(hi, read_char());
            if (hi < lo) return fail(fmt::format("character range U+{:X}-U+{:X} is reversed in rule '{}'", lo, hi, name));
          }
          ranges.emplace_back(lo, hi);
        }
        if (pos_ >= src_.size()) return fail(fmt::format("unterminated character class in rule '{}'", name));
        ++pos_;
        if (ranges.empty() && !negated) return fail(fmt::format("empty character class [] in rule '{}'", name));
        item.push_back({ElemType::kChar, add_class(std::move(ranges), negated)});
      } else if (c == '.') {
        ++pos_;
        item.push_back({ElemType::kChar, add_class({{0, kMaxCodePoint}}, false)});
      } else if (c == '(') {
        ++pos_;
        std::vector<Seq> alts;
        TANDEM_TRY(parse_alternates(name, alts, /*nested=*/true));
        if (pos_ >= src_.size() || src_[pos_] != ')') return fail(fmt::format("missing ')' in rule '{}'", name));
        ++pos_;
        item.push_back({ElemType::kRule, synth(name, std::move(alts))});
      } else if (is_name_char(c)) {
        if (at_rule_start()) {
          if (nested) return fail(fmt::format("missing ')' in rule '{}'", name));
          return Status::ok();
        }
        const size_t at = pos_;
        const std::string ref = read_name();
        item.push_back({ElemType::kRule, rule(ref, at)});
      } else {
        return fail(fmt::format("unexpected '{}' in rule '{}'", excerpt(), name));
      }
      TANDEM_TRY(parse_postfix(name, seq, std::move(item)));
    }
  }

  // Reads an optional * + ? {m,n} after an item and appends the item (expanded) to seq.
  Status parse_postfix(const std::string& name, Seq& seq, Seq item) {
    skip_spaces();
    int lo = 1, hi = 1;  // hi < 0: unbounded
    if (pos_ < src_.size()) {
      const char p = src_[pos_];
      if (p == '*') lo = 0, hi = -1, ++pos_;
      else if (p == '+') lo = 1, hi = -1, ++pos_;
      else if (p == '?') lo = 0, hi = 1, ++pos_;
      else if (p == '{') {
        ++pos_;
        auto number = [&](int& out) {
          skip_spaces();
          const size_t s = pos_;
          long v = 0;
          while (pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '9' && v <= kMaxRepeat) v = v * 10 + (src_[pos_++] - '0');
          out = static_cast<int>(v);
          skip_spaces();
          return pos_ > s;
        };
        if (!number(lo)) return fail(fmt::format("expected a number after '{{' in rule '{}'", name));
        hi = lo;
        if (pos_ < src_.size() && src_[pos_] == ',') {
          ++pos_;
          if (!number(hi)) hi = -1;
        }
        if (pos_ >= src_.size() || src_[pos_] != '}') return fail(fmt::format("expected '}}' in repetition of rule '{}'", name));
        ++pos_;
        if (lo > kMaxRepeat || hi > kMaxRepeat)
          return fail(fmt::format("repetition bound above {} in rule '{}'", kMaxRepeat, name));
        if (hi >= 0 && hi < lo) return fail(fmt::format("repetition {{{},{}}} has max < min in rule '{}'", lo, hi, name));
      }
    }
    if (lo == 1 && hi == 1) {
      seq.insert(seq.end(), item.begin(), item.end());
      return Status::ok();
    }
    if (item.size() > 1) item = {{ElemType::kRule, synth(name, {item})}};
    for (int i = 0; i < lo; ++i) seq.insert(seq.end(), item.begin(), item.end());
    if (hi < 0) {
      // R ::= item R | ""  (right recursion: no left recursion introduced)
      const uint32_t r = synth(name, {});
      Seq again = item;
      again.push_back({ElemType::kRule, r});
      rules_[r] = {again, Seq{}};
      seq.push_back({ElemType::kRule, r});
    } else if (hi > lo) {
      // Nested optionals: R1 ::= item | "", Rk ::= item R(k-1) | "".
      int prev = -1;
      for (int k = 0; k < hi - lo; ++k) {
        Seq body = item;
        if (prev >= 0) body.push_back({ElemType::kRule, static_cast<uint32_t>(prev)});
        prev = static_cast<int>(synth(name, {body, Seq{}}));
      }
      seq.push_back({ElemType::kRule, static_cast<uint32_t>(prev)});
    }
    return Status::ok();
  }

  // A rule that can start with itself (possibly after rules that match "")
  // would make the stack expansion loop forever: refuse it.
  Status check_left_recursion(const Grammar& g) const {
    const size_t n = g.rule_alts.size();
    std::vector<bool> nullable(n, false);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < n; ++r) {
        if (nullable[r]) continue;
        for (uint32_t a : g.rule_alts[r]) {
          bool all = true;
          for (uint32_t p = a; g.elems[p].type != ElemType::kEnd; ++p)
            if (g.elems[p].type == ElemType::kChar || !nullable[g.elems[p].arg]) { all = false; break; }
          if (all) { nullable[r] = true; changed = true; break; }
        }
      }
    }
    std::vector<std::vector<uint32_t>> left(n);  // rules that can come first in r
    for (size_t r = 0; r < n; ++r)
      for (uint32_t a : g.rule_alts[r])
        for (uint32_t p = a; g.elems[p].type == ElemType::kRule; ++p) {
          left[r].push_back(g.elems[p].arg);
          if (!nullable[g.elems[p].arg]) break;
        }
    std::vector<int> color(n, 0);  // 0 new, 1 on the DFS path, 2 done
    std::string cycle;
    std::function<bool(uint32_t)> dfs = [&](uint32_t r) {
      color[r] = 1;
      for (uint32_t s : left[r]) {
        if (color[s] == 1) { cycle = g.rule_names[s]; return true; }
        if (color[s] == 0 && dfs(s)) return true;
      }
      color[r] = 2;
      return false;
    };
    for (uint32_t r = 0; r < n; ++r)
      if (color[r] == 0 && dfs(r))
        return TANDEM_ERR(kInvalidArgument,
                          "{}: rule '{}' is left-recursive (it can start with itself, possibly after rules that match "
                          "the empty string)",
                          what_, cycle);
    return Status::ok();
  }

  std::string_view src_;
  std::string what_;
  size_t pos_ = 0;
  int n_synth_ = 0;
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint32_t> ids_;
  std::vector<std::vector<Seq>> rules_;
  std::vector<bool> defined_;
  std::vector<size_t> first_use_;
  std::vector<CharClass> classes_;
  std::map<std::pair<std::vector<std::pair<uint32_t, uint32_t>>, bool>, uint32_t> class_ids_;
};

}  // namespace

Result<Grammar> parse_gbnf(std::string_view text, std::string_view what, std::string_view root) {
  Parser p(text, what);
  return p.run(root);
}

}  // namespace tandem::grammar
