// JSON Schema -> GBNF (see json_schema.h).
#include "runtime/json_schema.h"

#include <cctype>
#include <map>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "core/utf8.h"

namespace tandem {

using json = nlohmann::ordered_json;  // properties keep the schema's order

namespace {

// The primitive rules every generated grammar may use.
constexpr const char* kPrimitives = R"(ws ::= [ \t\n]{0,8}
json-value ::= json-object | json-array | json-string | json-number | json-boolean | json-null
json-object ::= "{" ws ( json-string ws ":" ws json-value ws ( "," ws json-string ws ":" ws json-value ws )* )? "}"
json-array ::= "[" ws ( json-value ws ( "," ws json-value ws )* )? "]"
json-string ::= "\"" json-char* "\""
json-char ::= [^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )
json-int ::= "-"? ( "0" | [1-9] [0-9]{0,15} )
json-number ::= json-int ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?
json-integer ::= json-int
json-boolean ::= "true" | "false"
json-null ::= "null"
)";

// A regex `pattern` (simple ECMAScript subset) -> a GBNF expression over the
// characters of a JSON string body (quotes and backslashes excluded).
class RegexToGbnf {
 public:
  RegexToGbnf(std::string re, std::string where) : re_(std::move(re)), where_(std::move(where)) {}
  Result<std::string> run() {
    if (!re_.empty() && re_.front() == '^') ++pos_;
    std::string body;
    TANDEM_ASSIGN_OR_RETURN(body, alt());
    if (pos_ < re_.size()) return err(fmt::format("unexpected '{}' at offset {}", re_[pos_], pos_));
    return body;
  }

 private:
  Status err(const std::string& m) const {
    return TANDEM_ERR(kInvalidArgument, "json_schema: {}: pattern '{}': {}", where_, re_, m);
  }
  bool at_end() const { return pos_ >= re_.size() || (re_[pos_] == '$' && pos_ + 1 == re_.size()); }

  Result<std::string> alt() {
    std::vector<std::string> alts;
    for (;;) {
      TANDEM_ASSIGN_OR_RETURN(std::string s, seq());
      alts.push_back(s.empty() ? "\"\"" : s);
      if (pos_ < re_.size() && re_[pos_] == '|') {
        ++pos_;
        continue;
      }
      break;
    }
    if (alts.size() == 1) return alts[0];
    std::string out = "(";
    for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
    return out + ")";
  }

  Result<std::string> seq() {
    std::string out;
    while (!at_end() && re_[pos_] != '|' && re_[pos_] != ')') {
      TANDEM_ASSIGN_OR_RETURN(std::string a, atom());
      if (pos_ < re_.size()) {
        const char q = re_[pos_];
        if (q == '*' || q == '+' || q == '?') {
          a += q;
          ++pos_;
        } else if (q == '{') {
          const size_t close = re_.find('}', pos_);
          if (close == std::string::npos) return err("unterminated {m,n}");
          a += std::string(re_.substr(pos_, close - pos_ + 1));
          pos_ = close + 1;
        }
        if (pos_ < re_.size() && re_[pos_] == '?') ++pos_;  // lazy: same language
      }
      out += (out.empty() ? "" : " ") + a;
    }
    if (pos_ >= re_.size() || re_[pos_] != '$') return out;
    ++pos_;
    return out;
  }

  // One character of the pattern as GBNF class-body text (escaped).
  static std::string class_char(uint32_t c) {
    if (c == '\\' || c == ']' || c == '[' || c == '^' || c == '-' || c == '"') return std::string("\\") + static_cast<char>(c);
    if (c < 0x20 || c == 0x7F) return fmt::format("\\x{:02X}", c);
    std::string s;
    utf8_append(s, c);
    return s;
  }
  // A literal character of the string value as it appears in JSON text.
  static std::string literal_char(uint32_t c) {
    std::string s;
    if (c == '"') return "\"\\\\\\\"\"";   // the two bytes \"
    if (c == '\\') return "\"\\\\\\\\\"";  // the two bytes \\ (JSON)
    utf8_append(s, c);
    return gbnf_literal(s);
  }
  Result<uint32_t> utf8_char() {
    const auto c = static_cast<unsigned char>(re_[pos_]);
    const int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
    if (pos_ + n > re_.size()) return err("not valid UTF-8");
    uint32_t v = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (int i = 1; i < n; ++i) v = (v << 6) | (static_cast<unsigned char>(re_[pos_ + i]) & 0x3F);
    pos_ += n;
    return v;
  }
  // \d \w \s and their negations as class bodies; 0 when `e` is not one of them.
  static const char* shorthand(char e) {
    switch (e) {
      case 'd': return "0-9";
      case 'w': return "a-zA-Z0-9_";
      case 's': return " \\t";
      default: return nullptr;
    }
  }
  static constexpr const char* kExcluded = "\"\\\\\\x00-\\x1F";  // never raw inside a JSON string

  Result<std::string> atom() {
    const char c = re_[pos_];
    if (c == '(') {
      ++pos_;
      if (re_.substr(pos_, 2) == "?:") pos_ += 2;
      TANDEM_ASSIGN_OR_RETURN(std::string inner, alt());
      if (pos_ >= re_.size() || re_[pos_] != ')') return err("missing ')'");
      ++pos_;
      return "(" + inner + ")";
    }
    if (c == '.') {
      ++pos_;
      return fmt::format("[^{}]", kExcluded);
    }
    if (c == '[') {
      ++pos_;
      bool neg = false;
      if (pos_ < re_.size() && re_[pos_] == '^') neg = true, ++pos_;
      std::string body;
      bool first = true;
      while (pos_ < re_.size() && (re_[pos_] != ']' || first)) {
        first = false;
        if (re_[pos_] == '\\' && pos_ + 1 < re_.size()) {
          const char e = re_[pos_ + 1];
          pos_ += 2;
          if (const char* sh = shorthand(e)) body += sh;
          else if (e == 'n') body += "\\n";
          else if (e == 't') body += "\\t";
          else body += class_char(static_cast<unsigned char>(e));
          continue;
        }
        if (re_[pos_] == '-' && !body.empty() && pos_ + 1 < re_.size() && re_[pos_ + 1] != ']') {
          body += '-';
          ++pos_;
          continue;
        }
        TANDEM_ASSIGN_OR_RETURN(uint32_t ch, utf8_char());
        body += class_char(ch);
      }
      if (pos_ >= re_.size()) return err("unterminated character class");
      ++pos_;
      if (neg) return fmt::format("[^{}{}]", body, kExcluded);
      return "[" + body + "]";
    }
    if (c == '\\') {
      if (pos_ + 1 >= re_.size()) return err("trailing backslash");
      const char e = re_[pos_ + 1];
      pos_ += 2;
      if (const char* sh = shorthand(e)) return fmt::format("[{}]", sh);
      if (e == 'D' || e == 'W' || e == 'S') return fmt::format("[^{}{}]", shorthand(static_cast<char>(e + 32)), kExcluded);
      if (e == 'n' || e == 't' || e == 'r') return std::string(e == 'n' ? "\"\\\\n\"" : e == 't' ? "\"\\\\t\"" : "\"\\\\r\"");
      if (std::string_view("bBkpP123456789").find(e) != std::string_view::npos)
        return err(fmt::format("'\\{}' is not supported", e));
      return literal_char(static_cast<unsigned char>(e));
    }
    if (c == '*' || c == '+' || c == '?' || c == '{') return err(fmt::format("nothing to repeat at offset {}", pos_));
    TANDEM_ASSIGN_OR_RETURN(uint32_t ch, utf8_char());
    return literal_char(ch);
  }

  std::string re_;
  std::string where_;
  size_t pos_ = 0;
};

class SchemaConverter {
 public:
  explicit SchemaConverter(const json& root) : root_(root) {}

  Result<std::string> run() {
    TANDEM_ASSIGN_OR_RETURN(std::string top, visit(root_, "", "root"));
    std::string out = "root ::= " + top + "\n";
    for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
    return out + kPrimitives;
  }

 private:
  Status err(const std::string& path, const std::string& m) const {
    return TANDEM_ERR(kInvalidArgument, "json_schema: {}: {}", path.empty() ? "/" : path, m);
  }
  // A fresh rule name derived from a hint ([a-z0-9-] only).
  std::string new_rule(const std::string& hint, std::string body) {
    std::string base;
    for (char c : hint) base += (std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '-');
    if (base.empty()) base = "r";
    std::string name = "s-" + base;
    for (int i = 2; rules_.count(name); ++i) name = fmt::format("s-{}-{}", base, i);
    rules_[name] = std::move(body);
    return name;
  }

  // Returns a GBNF expression for the schema (a rule name or an inline expression).
  Result<std::string> visit(const json& s, const std::string& path, const std::string& hint) {
    if (++depth_ > 64) return err(path, "schema nesting deeper than 64 levels");
    struct Guard { int& d; ~Guard() { --d; } } guard{depth_};
    if (s.is_boolean()) {
      if (!s.get<bool>()) return err(path, "the schema 'false' matches nothing");
      return std::string("json-value");
    }
    if (!s.is_object()) return err(path, fmt::format("a schema must be an object or a boolean, got {}", s.type_name()));

    if (auto it = s.find("$ref"); it != s.end()) {
      if (!it->is_string()) return err(path + "/$ref", "must be a string");
      return ref(it->get<std::string>(), path + "/$ref");
    }
    if (auto it = s.find("const"); it != s.end()) return gbnf_literal(it->dump());
    if (auto it = s.find("enum"); it != s.end()) {
      if (!it->is_array() || it->empty()) return err(path + "/enum", "must be a non-empty array");
      std::string out = "(";
      for (size_t i = 0; i < it->size(); ++i) out += (i ? " | " : "") + gbnf_literal((*it)[i].dump());
      return out + ")";
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (auto it = s.find(key); it != s.end()) {
        if (!it->is_array() || it->empty()) return err(path + "/" + key, "must be a non-empty array");
        std::string out = "(";
        for (size_t i = 0; i < it->size(); ++i) {
          TANDEM_ASSIGN_OR_RETURN(std::string sub, visit((*it)[i], fmt::format("{}/{}/{}", path, key, i), hint));
          out += (i ? " | " : "") + sub;
        }
        return out + ")";
      }
    }
    if (auto it = s.find("allOf"); it != s.end()) {
      if (!it->is_array() || it->size() != 1)
        return err(path + "/allOf", "only an allOf with exactly one schema is supported");
      return visit((*it)[0], path + "/allOf/0", hint);
    }

    auto t = s.find("type");
    if (t == s.end()) {
      if (s.contains("properties")) return object(s, path, hint);
      if (s.contains("items")) return array(s, path, hint);
      return std::string("json-value");
    }
    if (t->is_array()) {
      if (t->empty()) return err(path + "/type", "must not be an empty array");
      std::string out = "(";
      for (size_t i = 0; i < t->size(); ++i) {
        if (!(*t)[i].is_string()) return err(fmt::format("{}/type/{}", path, i), "must be a string");
        TANDEM_ASSIGN_OR_RETURN(std::string sub, typed(s, (*t)[i].get<std::string>(), path, hint));
        out += (i ? " | " : "") + sub;
      }
      return out + ")";
    }
    if (!t->is_string()) return err(path + "/type", "must be a string or an array of strings");
    return typed(s, t->get<std::string>(), path, hint);
  }

  Result<std::string> typed(const json& s, const std::string& type, const std::string& path, const std::string& hint) {
    if (type == "object") return object(s, path, hint);
    if (type == "array") return array(s, path, hint);
    if (type == "string") return string(s, path, hint);
    if (type == "number") return std::string("json-number");
    if (type == "integer") return std::string("json-integer");
    if (type == "boolean") return std::string("json-boolean");
    if (type == "null") return std::string("json-null");
    return err(path + "/type", fmt::format("unknown type '{}' (expected string, number, integer, boolean, null, object or array)", type));
  }

  Result<std::string> ref(const std::string& r, const std::string& path) {
    if (auto it = ref_rules_.find(r); it != ref_rules_.end()) return it->second;
    std::string ptr;
    if (r.rfind("#/$defs/", 0) == 0 || r.rfind("#/definitions/", 0) == 0 || r == "#") ptr = r.substr(1);
    else return err(path, fmt::format("'{}' is not supported (only local #/$defs/... and #/definitions/... refs)", r));
    const json* target = &root_;
    if (!ptr.empty()) {
      try {
        json::json_pointer jp(ptr);
        if (!root_.contains(jp)) return err(path, fmt::format("'{}' points to nothing", r));
        target = &root_.at(jp);
      } catch (const json::exception&) {
        return err(path, fmt::format("'{}' is not a valid JSON pointer", r));
      }
    }
    // Name the rule first so recursive references resolve to it.
    const std::string name = new_rule(r.substr(r.find_last_of('/') + 1), "");
    ref_rules_[r] = name;
    TANDEM_ASSIGN_OR_RETURN(std::string body, visit(*target, ptr, name));
    rules_[name] = body;
    return name;
  }

  Result<std::string> string(const json& s, const std::string& path, const std::string& hint) {
    int64_t lo = 0, hi = -1;
    if (auto it = s.find("minLength"); it != s.end()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 0) return err(path + "/minLength", "must be a non-negative integer");
      lo = it->get<int64_t>();
    }
    if (auto it = s.find("maxLength"); it != s.end()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 0) return err(path + "/maxLength", "must be a non-negative integer");
      hi = it->get<int64_t>();
    }
    if (lo > 1000 || hi > 1000) return err(path, "minLength / maxLength above 1000 are not supported");
    if (hi >= 0 && hi < lo) return err(path, "maxLength is below minLength");
    if (auto it = s.find("pattern"); it != s.end()) {
      if (!it->is_string()) return err(path + "/pattern", "must be a string");
      RegexToGbnf conv(it->get<std::string>(), path + "/pattern");
      TANDEM_ASSIGN_OR_RETURN(std::string body, conv.run());
      return new_rule(hint, "\"\\\"\" " + body + " \"\\\"\"");
    }
    if (lo == 0 && hi < 0) return std::string("json-string");
    const std::string rep = hi < 0 ? fmt::format("{{{},}}", lo) : fmt::format("{{{},{}}}", lo, hi);
    return new_rule(hint, "\"\\\"\" json-char" + rep + " \"\\\"\"");
  }

  Result<std::string> array(const json& s, const std::string& path, const std::string& hint) {
    std::string item = "json-value";
    if (auto it = s.find("items"); it != s.end()) {
      TANDEM_ASSIGN_OR_RETURN(item, visit(*it, path + "/items", hint + "-item"));
    }
    int64_t lo = 0, hi = -1;
    if (auto it = s.find("minItems"); it != s.end()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 0) return err(path + "/minItems", "must be a non-negative integer");
      lo = it->get<int64_t>();
    }
    if (auto it = s.find("maxItems"); it != s.end()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 0) return err(path + "/maxItems", "must be a non-negative integer");
      hi = it->get<int64_t>();
    }
    if (lo > 1000 || hi > 1000) return err(path, "minItems / maxItems above 1000 are not supported");
    if (hi >= 0 && hi < lo) return err(path, "maxItems is below minItems");
    std::string body;
    if (hi == 0) {
      body = "\"[\" ws \"]\"";
    } else {
      const std::string more = hi < 0 ? fmt::format("{{{},}}", std::max<int64_t>(lo - 1, 0))
                                      : fmt::format("{{{},{}}}", std::max<int64_t>(lo - 1, 0), hi - 1);
      const std::string list = fmt::format("{} ws ( \",\" ws {} ws ){}", item, item, more);
      body = lo == 0 ? fmt::format("\"[\" ws ( {} )? \"]\"", list) : fmt::format("\"[\" ws {} \"]\"", list);
    }
    return new_rule(hint.empty() ? "array" : hint, body);
  }

  Result<std::string> object(const json& s, const std::string& path, const std::string& hint) {
    auto props = s.find("properties");
    if (props == s.end() || props->empty()) {
      auto ap = s.find("additionalProperties");
      if (ap == s.end() || (ap->is_boolean() && ap->get<bool>()) || (ap->is_object() && ap->empty()))
        return std::string("json-object");
      if (ap->is_boolean()) return std::string("( \"{\" ws \"}\" )");
      TANDEM_ASSIGN_OR_RETURN(std::string v, visit(*ap, path + "/additionalProperties", hint + "-value"));
      const std::string kv = fmt::format("json-string ws \":\" ws {} ws", v);
      return new_rule(hint.empty() ? "object" : hint, fmt::format("\"{{\" ws ( {} ( \",\" ws {} )* )? \"}}\"", kv, kv));
    }
    if (!props->is_object()) return err(path + "/properties", "must be an object");
    std::set<std::string> required;
    if (auto r = s.find("required"); r != s.end()) {
      if (!r->is_array()) return err(path + "/required", "must be an array of property names");
      for (const auto& n : *r) {
        if (!n.is_string()) return err(path + "/required", "must be an array of property names");
        if (!props->contains(n.get<std::string>()))
          return err(path + "/required", fmt::format("'{}' is required but not in properties", n.get<std::string>()));
        required.insert(n.get<std::string>());
      }
    }
    const std::string base = hint.empty() ? "object" : hint;
    std::vector<std::string> kv;
    std::vector<bool> req;
    for (const auto& [name, sub] : props->items()) {
      TANDEM_ASSIGN_OR_RETURN(std::string v, visit(sub, path + "/properties/" + name, base + "-" + name));
      kv.push_back(new_rule(base + "-" + name + "-kv", fmt::format("{} ws \":\" ws {} ws", gbnf_literal(json(name).dump()), v)));
      req.push_back(required.count(name) != 0);
    }
    // first[i]: properties i.. with nothing written yet; rest[i]: after something
    // was written (each property then needs a leading comma). Optional ones may be skipped.
    const size_t n = kv.size();
    std::vector<std::string> first(n + 1), rest(n + 1);
    first[n] = rest[n] = "\"\"";
    for (size_t k = n; k-- > 0;) {
      const std::string r_next = rest[k + 1];
      std::string rest_body = fmt::format("\",\" ws {} {}", kv[k], r_next);
      if (!req[k]) rest_body = fmt::format("( {} ) | {}", rest_body, r_next);
      rest[k] = new_rule(base + "-rest", rest_body);
      std::string first_body = fmt::format("{} {}", kv[k], r_next);
      if (!req[k]) first_body = fmt::format("( {} ) | {}", first_body, first[k + 1]);
      first[k] = new_rule(base + "-first", first_body);
    }
    return new_rule(base, fmt::format("\"{{\" ws {} \"}}\"", first[0]));
  }

  const json& root_;
  std::map<std::string, std::string> rules_;
  std::map<std::string, std::string> ref_rules_;
  int depth_ = 0;
};

}  // namespace

std::string gbnf_literal(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7F) out += fmt::format("\\x{:02X}", c);
    else out += ch;
  }
  return out + "\"";
}

Result<std::string> json_schema_to_gbnf(const nlohmann::ordered_json& schema) {
  SchemaConverter c(schema);
  return c.run();
}

Result<std::string> json_schema_to_gbnf(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return TANDEM_ERR(kInvalidArgument, "json_schema: the schema is not valid JSON");
  return json_schema_to_gbnf(j);
}

std::string json_object_gbnf() { return std::string("root ::= json-object\n") + kPrimitives; }

}  // namespace tandem
