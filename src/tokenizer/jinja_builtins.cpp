// Built-in filters, tests and methods of the Jinja subset (the ones chat
// templates use). Anything else is reported as unsupported, by name.
#include <algorithm>
#include <cctype>
#include <cmath>

#include "tokenizer/jinja_eval.h"

namespace tandem::jinja {
namespace {

constexpr std::string_view kWs = " \t\n\r\f\v";

std::string strip(const std::string& s, std::string_view chars, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left) {
    while (b < e && chars.find(s[b]) != std::string_view::npos) ++b;
  }
  if (right) {
    while (e > b && chars.find(s[e - 1]) != std::string_view::npos) --e;
  }
  return s.substr(b, e - b);
}

std::string ascii_map(std::string s, bool upper) {
  for (char& c : s) {
    auto u = static_cast<unsigned char>(c);
    c = static_cast<char>(upper ? std::toupper(u) : std::tolower(u));
  }
  return s;
}

std::string title_case(std::string s) {
  bool start = true;
  for (char& c : s) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalpha(u)) {
      c = static_cast<char>(start ? std::toupper(u) : std::tolower(u));
      start = false;
    } else {
      start = true;
    }
  }
  return s;
}

std::string capitalize(std::string s) {
  s = ascii_map(std::move(s), false);
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  if (from.empty()) return s;
  std::string out;
  size_t pos = 0, k;
  int64_t done = 0;
  while ((count < 0 || done < count) && (k = s.find(from, pos)) != std::string::npos) {
    out.append(s, pos, k - pos);
    out += to;
    pos = k + from.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

List split(const std::string& s, const Value& sep, int64_t maxsplit) {
  List out;
  if (sep.is_string() && !sep.str().empty()) {
    size_t pos = 0, k;
    int64_t n = 0;
    while ((maxsplit < 0 || n < maxsplit) && (k = s.find(sep.str(), pos)) != std::string::npos) {
      out.push_back(Value::string(s.substr(pos, k - pos)));
      pos = k + sep.str().size();
      ++n;
    }
    out.push_back(Value::string(s.substr(pos)));
    return out;
  }
  // No separator: split on runs of whitespace, dropping empty strings.
  size_t i = 0;
  int64_t n = 0;
  while (i < s.size()) {
    while (i < s.size() && kWs.find(s[i]) != std::string_view::npos) ++i;
    if (i >= s.size()) break;
    if (maxsplit >= 0 && n >= maxsplit) {
      out.push_back(Value::string(strip(s.substr(i), kWs, false, true)));
      break;
    }
    size_t j = i;
    while (j < s.size() && kWs.find(s[j]) == std::string_view::npos) ++j;
    out.push_back(Value::string(s.substr(i, j - i)));
    ++n;
    i = j;
  }
  return out;
}

const Value* kwarg(const KwArgs& kw, std::string_view name) {
  for (const auto& kv : kw) {
    if (kv.first == name) return &kv.second;
  }
  return nullptr;
}

// Positional argument `i`, else keyword `name`, else undefined.
Value arg(const std::vector<Value>& a, const KwArgs& kw, size_t i, std::string_view name) {
  if (i < a.size()) return a[i];
  if (const Value* v = kwarg(kw, name)) return *v;
  return Value();
}

Result<List> as_list(const Value& v, const char* what, int line) {
  if (v.is_list()) return v.items();
  if (v.is_dict()) {
    List l;
    for (const auto& kv : v.entries().items) l.push_back(Value::string(kv.first));
    return l;
  }
  if (v.is_string()) {
    List l;
    std::vector<size_t> cps = code_point_offsets(v.str());
    for (size_t k = 0; k + 1 < cps.size(); ++k) l.push_back(Value::string(v.str().substr(cps[k], cps[k + 1] - cps[k])));
    return l;
  }
  if (v.is_undefined() || v.is_none()) return List{};
  return TANDEM_ERR(kInvalidArgument, "template line {}: {} needs a sequence, got {}", line, what, v.type_name());
}

Value attribute_of(const Value& v, const std::string& path) {
  Value cur = v;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t dot = path.find('.', pos);
    std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (!cur.is_dict()) return Value();
    const Value* next = cur.entries().find(part);
    if (!next) return Value();
    cur = *next;
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return cur;
}

int compare_values(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    double x = a.as_double(), y = b.as_double();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a.to_string().compare(b.to_string());
}

}  // namespace

Result<bool> apply_test(const std::string& name, const Value& v, std::vector<Value>& a, int line) {
  using K = Value::Kind;
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.kind() == K::kInt || v.kind() == K::kFloat;
  if (name == "integer") return v.kind() == K::kInt;
  if (name == "float") return v.kind() == K::kFloat;
  if (name == "boolean") return v.kind() == K::kBool;
  if (name == "true") return v.kind() == K::kBool && v.as_bool();
  if (name == "false") return v.kind() == K::kBool && !v.as_bool();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_dict() || v.is_string();
  if (name == "sequence") return v.is_list() || v.is_dict() || v.is_string();
  if (name == "callable") return v.is_function();
  if (name == "lower") return v.is_string() && ascii_map(v.str(), false) == v.str();
  if (name == "upper") return v.is_string() && ascii_map(v.str(), true) == v.str();
  if (name == "odd" || name == "even") {
    if (v.kind() != K::kInt) return TANDEM_ERR(kInvalidArgument, "template line {}: '{}' test needs an int", line, name);
    return (v.as_int() % 2 != 0) == (name == "odd");
  }
  auto need = [&](size_t n) -> Status {
    if (a.size() < n) return TANDEM_ERR(kInvalidArgument, "template line {}: test '{}' needs {} argument(s)", line, name, n);
    return Status::ok();
  };
  if (name == "divisibleby") {
    TANDEM_TRY(need(1));
    int64_t d = a[0].as_int();
    return d != 0 && v.as_int() % d == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") { TANDEM_TRY(need(1)); return v == a[0]; }
  if (name == "ne" || name == "!=") { TANDEM_TRY(need(1)); return !(v == a[0]); }
  if (name == "sameas") { TANDEM_TRY(need(1)); return v == a[0] && v.kind() == a[0].kind(); }
  if (name == "lt" || name == "lessthan") { TANDEM_TRY(need(1)); return compare_values(v, a[0]) < 0; }
  if (name == "le") { TANDEM_TRY(need(1)); return compare_values(v, a[0]) <= 0; }
  if (name == "gt" || name == "greaterthan") { TANDEM_TRY(need(1)); return compare_values(v, a[0]) > 0; }
  if (name == "ge") { TANDEM_TRY(need(1)); return compare_values(v, a[0]) >= 0; }
  if (name == "in") {
    TANDEM_TRY(need(1));
    const Value& c = a[0];
    if (c.is_string()) {
      if (!v.is_string()) return TANDEM_ERR(kInvalidArgument, "template line {}: 'in <string>' needs a string on the left", line);
      return c.str().find(v.str()) != std::string::npos;
    }
    if (c.is_list()) {
      for (const Value& x : c.items()) {
        if (x == v) return true;
      }
      return false;
    }
    if (c.is_dict()) return c.entries().find(v.to_string()) != nullptr;
    if (c.is_undefined() || c.is_none()) return false;
    return TANDEM_ERR(kInvalidArgument, "template line {}: 'in' needs a container, got {}", line, c.type_name());
  }
  return TANDEM_ERR(kUnsupported, "template line {}: unsupported test '{}'", line, name);
}

Result<Value> apply_filter(const std::string& name, const Value& v, std::vector<Value>& a, KwArgs& kw, int line,
                           const RenderLimits& limits) {
  (void)limits;
  auto need_string = [&]() -> Status {
    if (!v.is_string()) {
      return TANDEM_ERR(kInvalidArgument, "template line {}: filter '{}' needs a string, got {}", line, name, v.type_name());
    }
    return Status::ok();
  };
  if (name == "trim") {
    TANDEM_TRY(need_string());
    Value chars = arg(a, kw, 0, "chars");
    return Value::string(strip(v.str(), chars.is_string() ? std::string_view(chars.str()) : kWs, true, true));
  }
  if (name == "length" || name == "count") {
    if (v.is_string()) return Value::integer(static_cast<int64_t>(code_point_offsets(v.str()).size() - 1));
    if (v.is_list()) return Value::integer(static_cast<int64_t>(v.items().size()));
    if (v.is_dict()) return Value::integer(static_cast<int64_t>(v.entries().items.size()));
    if (v.is_undefined()) return Value::integer(0);
    return TANDEM_ERR(kInvalidArgument, "template line {}: object of type {} has no length", line, v.type_name());
  }
  if (name == "tojson") {
    Value ind = arg(a, kw, 0, "indent");
    return Value::string(v.to_json(ind.is_number() ? static_cast<int>(std::clamp<int64_t>(ind.as_int(), 0, 64)) : -1));
  }
  if (name == "upper") { TANDEM_TRY(need_string()); return Value::string(ascii_map(v.str(), true)); }
  if (name == "lower") { TANDEM_TRY(need_string()); return Value::string(ascii_map(v.str(), false)); }
  if (name == "title") { TANDEM_TRY(need_string()); return Value::string(title_case(v.str())); }
  if (name == "capitalize") { TANDEM_TRY(need_string()); return Value::string(capitalize(v.str())); }
  if (name == "string") return Value::string(v.to_string());
  if (name == "safe" || name == "e" || name == "escape") {
    if (name == "safe") return v;
    std::string s = v.to_string(), out;
    for (char c : s) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
      }
    }
    return Value::string(out);
  }
  if (name == "default" || name == "d") {
    Value def = arg(a, kw, 0, "default_value");
    bool boolean = arg(a, kw, 1, "boolean").truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return def.is_undefined() ? Value::string("") : def;
    return v;
  }
  if (name == "int") {
    if (v.is_string()) {
      try {
        return Value::integer(std::stoll(v.str()));
      } catch (...) {
        Value def = arg(a, kw, 0, "default");
        return def.is_undefined() ? Value::integer(0) : def;
      }
    }
    return Value::integer(v.as_int());
  }
  if (name == "float") {
    if (v.is_string()) {
      try {
        return Value::number(std::stod(v.str()));
      } catch (...) {
        return Value::number(0.0);
      }
    }
    return Value::number(v.as_double());
  }
  if (name == "abs") {
    if (v.kind() == Value::Kind::kFloat) return Value::number(std::fabs(v.as_double()));
    return Value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  if (name == "round") {
    int64_t prec = arg(a, kw, 0, "precision").as_int();
    double m = std::pow(10.0, static_cast<double>(std::clamp<int64_t>(prec, 0, 15)));
    return Value::number(std::round(v.as_double() * m) / m);
  }
  if (name == "replace") {
    TANDEM_TRY(need_string());
    Value from = arg(a, kw, 0, "old"), to = arg(a, kw, 1, "new"), cnt = arg(a, kw, 2, "count");
    return Value::string(replace_all(v.str(), from.to_string(), to.to_string(), cnt.is_number() ? cnt.as_int() : -1));
  }
  if (name == "items") {
    if (!v.is_dict()) return TANDEM_ERR(kInvalidArgument, "template line {}: filter 'items' needs a dict", line);
    List l;
    for (const auto& kv : v.entries().items) l.push_back(Value::list({Value::string(kv.first), kv.second}));
    return Value::list(std::move(l));
  }
  if (name == "list") {
    TANDEM_ASSIGN_OR_RETURN(List l, as_list(v, "filter 'list'", line));
    return Value::list(std::move(l));
  }
  if (name == "first" || name == "last") {
    TANDEM_ASSIGN_OR_RETURN(List l, as_list(v, "filter 'first'/'last'", line));
    if (l.empty()) return Value();
    return name == "first" ? l.front() : l.back();
  }
  if (name == "reverse") {
    if (v.is_string()) {
      std::vector<size_t> cps = code_point_offsets(v.str());
      std::string s;
      for (size_t k = cps.size() - 1; k > 0; --k) s.append(v.str(), cps[k - 1], cps[k] - cps[k - 1]);
      return Value::string(s);
    }
    TANDEM_ASSIGN_OR_RETURN(List l, as_list(v, "filter 'reverse'", line));
    std::reverse(l.begin(), l.end());
    return Value::list(std::move(l));
  }
  if (name == "join") {
    TANDEM_ASSIGN_OR_RETURN(List l, as_list(v, "filter 'join'", line));
    Value sep = arg(a, kw, 0, "d"), attr = arg(a, kw, 1, "attribute");
    std::string out;
    for (size_t k = 0; k < l.size(); ++k) {
      if (k) out += sep.to_string();
      out += (attr.is_string() ? attribute_of(l[k], attr.str()) : l[k]).to_string();
    }
    return Value::string(out);
  }
  if (name == "sort" || name == "unique") {
    TANDEM_ASSIGN_OR_RETURN(List l, as_list(v, "filter 'sort'", line));
    Value attr = kwarg(kw, "attribute") ? *kwarg(kw, "attribute") : Value();
    auto key = [&](const Value& x) { return attr.is_string() ? attribute_of(x, attr.str()) : x; };
    if (name == "unique") {
      List out;
      for (const Value& x : l) {
        bool seen = false;
        for (const Value& y : out) seen = seen || key(x) == key(y);
        if (!seen) out.push_back(x);
      }
      return Value::list(std::move(out));
    }
    bool rev = arg(a, kw, 0, "reverse").truthy();
    std::stable_sort(l.begin(), l.end(), [&](const Value& x, const Value& y) {
      int c = compare_values(key(x), key(y));
      return rev ? c > 0 : c < 0;
    });
    return Value::list(std::move(l));
  }
  if (name == "map") {
    TANDEM_ASSIGN_OR_RETURN(List l, as_list(v, "filter 'map'", line));
    List out;
    if (const Value* attr = kwarg(kw, "attribute")) {
      for (const Value& x : l) out.push_back(attribute_of(x, attr->to_string()));
      return Value::list(std::move(out));
    }
    if (a.empty()) return TANDEM_ERR(kInvalidArgument, "template line {}: filter 'map' needs a filter name or attribute=", line);
    std::string f = a[0].to_string();
    std::vector<Value> rest(a.begin() + 1, a.end());
    for (const Value& x : l) {
      std::vector<Value> r = rest;
      KwArgs none;
      TANDEM_ASSIGN_OR_RETURN(Value y, apply_filter(f, x, r, none, line, limits));
      out.push_back(std::move(y));
    }
    return Value::list(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    TANDEM_ASSIGN_OR_RETURN(List l, as_list(v, "filter 'select'", line));
    const bool by_attr = name == "selectattr" || name == "rejectattr";
    const bool keep_if = name == "select" || name == "selectattr";
    size_t k = 0;
    std::string attr;
    if (by_attr) {
      if (a.empty()) return TANDEM_ERR(kInvalidArgument, "template line {}: filter '{}' needs an attribute", line, name);
      attr = a[k++].to_string();
    }
    std::string test = k < a.size() ? a[k++].to_string() : std::string();
    std::vector<Value> targs(a.begin() + static_cast<std::ptrdiff_t>(std::min(k, a.size())), a.end());
    List out;
    for (const Value& x : l) {
      Value subject = by_attr ? attribute_of(x, attr) : x;
      bool r;
      if (test.empty()) {
        r = subject.truthy();
      } else {
        std::vector<Value> ta = targs;
        TANDEM_ASSIGN_OR_RETURN(r, apply_test(test, subject, ta, line));
      }
      if (r == keep_if) out.push_back(x);
    }
    return Value::list(std::move(out));
  }
  if (name == "indent") {
    TANDEM_TRY(need_string());
    Value w = arg(a, kw, 0, "width");
    bool first = arg(a, kw, 1, "first").truthy();
    std::string pad(static_cast<size_t>(std::clamp<int64_t>(w.is_undefined() ? 4 : w.as_int(), 0, 64)), ' ');
    if (w.is_string()) pad = w.str();
    std::string out;
    for (size_t i = 0; i < v.str().size(); ++i) {
      char c = v.str()[i];
      out += c;
      if (c == '\n' && i + 1 < v.str().size() && v.str()[i + 1] != '\n') out += pad;
    }
    return Value::string(first ? pad + out : out);
  }
  return TANDEM_ERR(kUnsupported, "template line {}: unsupported filter '{}'", line, name);
}

Result<Value> call_method(const Value& obj, const std::string& name, std::vector<Value>& a, KwArgs& kw, int line) {
  if (obj.is_string()) {
    const std::string& s = obj.str();
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      Value chars = arg(a, kw, 0, "chars");
      std::string_view set = chars.is_string() ? std::string_view(chars.str()) : kWs;
      return Value::string(strip(s, set, name != "rstrip", name != "lstrip"));
    }
    if (name == "startswith" || name == "endswith") {
      Value p = arg(a, kw, 0, "prefix");
      List options = p.is_list() ? p.items() : List{p};
      for (const Value& o : options) {
        const std::string t = o.to_string();
        bool hit = name == "startswith" ? s.compare(0, t.size(), t) == 0
                                        : s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
        if (hit) return Value::boolean(true);
      }
      return Value::boolean(false);
    }
    if (name == "split") {
      Value maxs = arg(a, kw, 1, "maxsplit");
      return Value::list(split(s, arg(a, kw, 0, "sep"), maxs.is_number() ? maxs.as_int() : -1));
    }
    if (name == "replace") {
      Value cnt = arg(a, kw, 2, "count");
      return Value::string(replace_all(s, arg(a, kw, 0, "old").to_string(), arg(a, kw, 1, "new").to_string(),
                                       cnt.is_number() ? cnt.as_int() : -1));
    }
    if (name == "upper") return Value::string(ascii_map(s, true));
    if (name == "lower") return Value::string(ascii_map(s, false));
    if (name == "title") return Value::string(title_case(s));
    if (name == "capitalize") return Value::string(capitalize(s));
    if (name == "find") {
      size_t k = s.find(arg(a, kw, 0, "sub").to_string());
      return Value::integer(k == std::string::npos ? -1 : static_cast<int64_t>(k));
    }
    if (name == "count") {
      std::string sub = arg(a, kw, 0, "sub").to_string();
      if (sub.empty()) return Value::integer(static_cast<int64_t>(code_point_offsets(s).size()));
      int64_t n = 0;
      for (size_t k = s.find(sub); k != std::string::npos; k = s.find(sub, k + sub.size())) ++n;
      return Value::integer(n);
    }
    if (name == "join") {
      TANDEM_ASSIGN_OR_RETURN(List l, as_list(arg(a, kw, 0, "iterable"), "str.join", line));
      std::string out;
      for (size_t k = 0; k < l.size(); ++k) {
        if (k) out += s;
        out += l[k].to_string();
      }
      return Value::string(out);
    }
    if (name == "isdigit" || name == "isalpha" || name == "isspace") {
      if (s.empty()) return Value::boolean(false);
      for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        bool ok = name == "isdigit" ? std::isdigit(u) != 0 : name == "isalpha" ? std::isalpha(u) != 0 : std::isspace(u) != 0;
        if (!ok) return Value::boolean(false);
      }
      return Value::boolean(true);
    }
  } else if (obj.is_list()) {
    List& l = obj.items();
    if (name == "append") {
      l.push_back(arg(a, kw, 0, "object"));
      return Value::none();
    }
    if (name == "pop") {
      if (l.empty()) return TANDEM_ERR(kInvalidArgument, "template line {}: pop from empty list", line);
      Value iv = arg(a, kw, 0, "index");
      int64_t i = iv.is_number() ? iv.as_int() : -1;
      if (!normalize_index(i, l.size())) return TANDEM_ERR(kInvalidArgument, "template line {}: pop index out of range", line);
      Value r = l[static_cast<size_t>(i)];
      l.erase(l.begin() + i);
      return r;
    }
    if (name == "index" || name == "count") {
      Value x = arg(a, kw, 0, "value");
      int64_t n = 0;
      for (size_t k = 0; k < l.size(); ++k) {
        if (l[k] == x) {
          if (name == "index") return Value::integer(static_cast<int64_t>(k));
          ++n;
        }
      }
      if (name == "index") return TANDEM_ERR(kInvalidArgument, "template line {}: value not in list", line);
      return Value::integer(n);
    }
  } else if (obj.is_dict()) {
    Dict& d = obj.entries();
    if (name == "items" || name == "keys" || name == "values") {
      List l;
      for (const auto& kv : d.items) {
        if (name == "items") l.push_back(Value::list({Value::string(kv.first), kv.second}));
        if (name == "keys") l.push_back(Value::string(kv.first));
        if (name == "values") l.push_back(kv.second);
      }
      return Value::list(std::move(l));
    }
    if (name == "get") {
      const Value* v = d.find(arg(a, kw, 0, "key").to_string());
      if (v) return *v;
      Value def = arg(a, kw, 1, "default");
      return def.is_undefined() ? Value::none() : def;
    }
    if (name == "update") {
      Value other = arg(a, kw, 0, "other");
      if (other.is_dict()) {
        for (const auto& kv : other.entries().items) d.set(kv.first, kv.second);
      }
      for (const auto& kv : kw) d.set(kv.first, kv.second);
      return Value::none();
    }
  }
  return TANDEM_ERR(kNotFound, "no method");
}

}  // namespace tandem::jinja
