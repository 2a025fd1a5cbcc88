// Tree-walking evaluator for the Jinja subset: scopes (a for-loop body gets its
// own scope; namespaces and containers are shared by reference, as in Python),
// the loop object, operators, and output with size / step limits so hostile
// templates cannot run away.
#include "tokenizer/jinja_eval.h"

#include <cmath>
#include <unordered_map>

namespace tandem::jinja {
namespace {

enum class Flow { kNormal, kBreak, kContinue };

class Evaluator {
 public:
  Evaluator(const Value& context, const RenderLimits& limits) : limits_(limits) {
    scopes_.emplace_back();
    install_globals();
    if (context.is_dict()) {
      for (const auto& kv : context.entries().items) scopes_.front()[kv.first] = kv.second;
    }
  }

  Result<std::string> run(const Program& p) {
    Flow flow = Flow::kNormal;
    TANDEM_TRY(exec_body(p.body, flow));
    return std::move(out_);
  }

 private:
  const RenderLimits& limits_;
  std::vector<std::unordered_map<std::string, Value>> scopes_;
  std::string out_;
  uint64_t steps_ = 0;

  Status step(int line) {
    if (++steps_ > limits_.max_steps) {
      return TANDEM_ERR(kOutOfMemory, "template line {}: evaluation step limit ({}) exceeded", line, limits_.max_steps);
    }
    return Status::ok();
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return Value();
  }

  void install_globals() {
    auto& g = scopes_.front();
    size_t max_range = limits_.max_range;
    g["range"] = Value::function([max_range](std::vector<Value>& a, KwArgs&) -> Result<Value> {
      int64_t start = 0, stop = 0, stepv = 1;
      if (a.size() == 1) {
        stop = a[0].as_int();
      } else if (a.size() == 2 || a.size() == 3) {
        start = a[0].as_int();
        stop = a[1].as_int();
        if (a.size() == 3) stepv = a[2].as_int();
      } else {
        return TANDEM_ERR(kInvalidArgument, "range() takes 1 to 3 arguments");
      }
      if (stepv == 0) return TANDEM_ERR(kInvalidArgument, "range() step must not be zero");
      const double count = std::ceil((static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(stepv));
      if (count > static_cast<double>(max_range)) {
        return TANDEM_ERR(kOutOfMemory, "range() of {} elements exceeds the limit {}", count, max_range);
      }
      List l;
      for (int64_t i = start; stepv > 0 ? i < stop : i > stop; i += stepv) {
        if (l.size() >= max_range) return TANDEM_ERR(kOutOfMemory, "range() longer than {}", max_range);
        l.push_back(Value::integer(i));
      }
      return Value::list(std::move(l));
    });
    g["namespace"] = Value::function([](std::vector<Value>& a, KwArgs& kw) -> Result<Value> {
      Dict d;
      d.is_namespace = true;
      for (const Value& v : a) {
        if (v.is_dict()) {
          for (const auto& kv : v.entries().items) d.set(kv.first, kv.second);
        }
      }
      for (auto& kv : kw) d.set(kv.first, kv.second);
      return Value::dict(std::move(d));
    });
    g["dict"] = Value::function([](std::vector<Value>& a, KwArgs& kw) -> Result<Value> {
      Dict d;
      for (const Value& v : a) {
        if (v.is_dict()) {
          for (const auto& kv : v.entries().items) d.set(kv.first, kv.second);
        }
      }
      for (auto& kv : kw) d.set(kv.first, kv.second);
      return Value::dict(std::move(d));
    });
    g["raise_exception"] = Value::function([](std::vector<Value>& a, KwArgs&) -> Result<Value> {
      return TANDEM_ERR(kInvalidArgument, "chat template raised an exception: {}",
                        a.empty() ? std::string("(no message)") : a[0].to_string());
    });
  }

  Status emit(const std::string& s, int line) {
    if (out_.size() + s.size() > limits_.max_output) {
      return TANDEM_ERR(kOutOfMemory, "template line {}: output larger than {} bytes", line, limits_.max_output);
    }
    out_ += s;
    return Status::ok();
  }

  Status exec_body(const Body& body, Flow& flow) {
    for (const NodePtr& n : body) {
      TANDEM_TRY(exec(*n, flow));
      if (flow != Flow::kNormal) return Status::ok();
    }
    return Status::ok();
  }

  Status assign(const Node& n, Value v) {
    if (!n.attr.empty()) {
      Value ns = lookup(n.targets[0]);
      if (!ns.is_dict() || !ns.entries().is_namespace) {
        return TANDEM_ERR(kInvalidArgument, "template line {}: cannot set attribute '{}' on '{}' (not a namespace)",
                          n.line, n.attr, n.targets[0]);
      }
      ns.entries().set(n.attr, std::move(v));
      return Status::ok();
    }
    if (n.targets.size() == 1) {
      scopes_.back()[n.targets[0]] = std::move(v);
      return Status::ok();
    }
    if (!v.is_list() || v.items().size() != n.targets.size()) {
      return TANDEM_ERR(kInvalidArgument, "template line {}: cannot unpack {} into {} names", n.line,
                        v.type_name(), n.targets.size());
    }
    for (size_t i = 0; i < n.targets.size(); ++i) scopes_.back()[n.targets[i]] = v.items()[i];
    return Status::ok();
  }

  Status exec(const Node& n, Flow& flow) {
    TANDEM_TRY(step(n.line));
    switch (n.kind) {
      case Node::Kind::kText: return emit(n.text, n.line);
      case Node::Kind::kOutput: {
        TANDEM_ASSIGN_OR_RETURN(Value v, eval(*n.expr));
        return emit(v.to_string(), n.line);
      }
      case Node::Kind::kIf: {
        for (const auto& br : n.branches) {
          TANDEM_ASSIGN_OR_RETURN(Value c, eval(*br.first));
          if (c.truthy()) return exec_body(br.second, flow);
        }
        return exec_body(n.else_body, flow);
      }
      case Node::Kind::kSet: {
        TANDEM_ASSIGN_OR_RETURN(Value v, eval(*n.expr));
        return assign(n, std::move(v));
      }
      case Node::Kind::kSetBlock: {
        std::string saved;
        saved.swap(out_);
        Flow f = Flow::kNormal;
        Status st = exec_body(n.body, f);
        std::string captured;
        captured.swap(out_);
        out_.swap(saved);
        TANDEM_TRY(st);
        return assign(n, Value::string(std::move(captured)));
      }
      case Node::Kind::kGeneration: return exec_body(n.body, flow);
      case Node::Kind::kBreak: flow = Flow::kBreak; return Status::ok();
      case Node::Kind::kContinue: flow = Flow::kContinue; return Status::ok();
      case Node::Kind::kFor: return exec_for(n, flow);
    }
    return Status::ok();
  }

  Status bind_loop_vars(const Node& n, const Value& item) {
    auto& scope = scopes_.back();
    if (n.targets.size() == 1) {
      scope[n.targets[0]] = item;
      return Status::ok();
    }
    if (!item.is_list() || item.items().size() != n.targets.size()) {
      return TANDEM_ERR(kInvalidArgument, "template line {}: cannot unpack {} into {} loop variables", n.line,
                        item.type_name(), n.targets.size());
    }
    for (size_t i = 0; i < n.targets.size(); ++i) scope[n.targets[i]] = item.items()[i];
    return Status::ok();
  }

  Status exec_for(const Node& n, Flow& outer_flow) {
    (void)outer_flow;  // break/continue stop at the innermost loop
    TANDEM_ASSIGN_OR_RETURN(Value seq, eval(*n.expr));
    List items;
    if (seq.is_list()) {
      items = seq.items();
    } else if (seq.is_dict()) {
      for (const auto& kv : seq.entries().items) items.push_back(Value::string(kv.first));
    } else if (seq.is_string()) {
      std::vector<size_t> cps = code_point_offsets(seq.str());
      for (size_t k = 0; k + 1 < cps.size(); ++k) items.push_back(Value::string(seq.str().substr(cps[k], cps[k + 1] - cps[k])));
    } else if (seq.is_undefined() || seq.is_none()) {
      // iterating an undefined value renders the else branch (Jinja's default Undefined is empty)
    } else {
      return TANDEM_ERR(kInvalidArgument, "template line {}: cannot iterate over {}", n.line, seq.type_name());
    }
    if (n.filter) {
      List kept;
      for (const Value& it : items) {
        scopes_.emplace_back();
        Status st = bind_loop_vars(n, it);
        Result<Value> c = st.is_ok() ? eval(*n.filter) : Result<Value>(st);
        scopes_.pop_back();
        if (!c.is_ok()) return c.status();
        if (c.value().truthy()) kept.push_back(it);
      }
      items.swap(kept);
    }
    if (items.empty()) {
      Flow f = Flow::kNormal;
      return exec_body(n.else_body, f);
    }
    const size_t len = items.size();
    for (size_t i = 0; i < len; ++i) {
      TANDEM_TRY(step(n.line));
      scopes_.emplace_back();
      Dict loop;
      loop.items = {
          {"index", Value::integer(static_cast<int64_t>(i + 1))},
          {"index0", Value::integer(static_cast<int64_t>(i))},
          {"revindex", Value::integer(static_cast<int64_t>(len - i))},
          {"revindex0", Value::integer(static_cast<int64_t>(len - i - 1))},
          {"first", Value::boolean(i == 0)},
          {"last", Value::boolean(i + 1 == len)},
          {"length", Value::integer(static_cast<int64_t>(len))},
          {"previtem", i > 0 ? items[i - 1] : Value()},
          {"nextitem", i + 1 < len ? items[i + 1] : Value()},
      };
      scopes_.back()["loop"] = Value::dict(std::move(loop));
      Status st = bind_loop_vars(n, items[i]);
      Flow f = Flow::kNormal;
      if (st.is_ok()) st = exec_body(n.body, f);
      scopes_.pop_back();
      TANDEM_TRY(st);
      if (f == Flow::kBreak) break;
    }
    return Status::ok();
  }

  // ---- expressions ----

  Status eval_args(const Expr& e, std::vector<Value>& pos, KwArgs& kw) {
    for (size_t k = 1; k <= e.npos; ++k) {
      TANDEM_ASSIGN_OR_RETURN(Value v, eval(*e.args[k]));
      pos.push_back(std::move(v));
    }
    for (size_t k = 0; k < e.kwnames.size(); ++k) {
      TANDEM_ASSIGN_OR_RETURN(Value v, eval(*e.args[1 + e.npos + k]));
      kw.emplace_back(e.kwnames[k], std::move(v));
    }
    return Status::ok();
  }

  Result<Value> subscript(const Value& obj, const Value& key, int line) {
    if (obj.is_dict()) {
      const Value* v = obj.entries().find(key.to_string());
      return v ? *v : Value();
    }
    if (obj.is_list() && key.is_number()) {
      int64_t i = key.as_int();
      if (!normalize_index(i, obj.items().size())) return Value();
      return obj.items()[static_cast<size_t>(i)];
    }
    if (obj.is_string() && key.is_number()) {
      std::vector<size_t> cps = code_point_offsets(obj.str());
      int64_t i = key.as_int();
      if (!normalize_index(i, cps.size() - 1)) return Value();
      size_t k = static_cast<size_t>(i);
      return Value::string(obj.str().substr(cps[k], cps[k + 1] - cps[k]));
    }
    if (obj.is_undefined() || obj.is_none()) return Value();
    return TANDEM_ERR(kInvalidArgument, "template line {}: cannot subscript {} with {}", line, obj.type_name(),
                      key.type_name());
  }

  Result<Value> slice(const Value& obj, const Value& a, const Value& b, const Value& c, int line) {
    int64_t stepv = c.is_number() ? c.as_int() : 1;
    if (stepv == 0) return TANDEM_ERR(kInvalidArgument, "template line {}: slice step cannot be zero", line);
    std::vector<size_t> cps;
    size_t n;
    if (obj.is_list()) {
      n = obj.items().size();
    } else if (obj.is_string()) {
      cps = code_point_offsets(obj.str());
      n = cps.size() - 1;
    } else {
      return TANDEM_ERR(kInvalidArgument, "template line {}: cannot slice {}", line, obj.type_name());
    }
    const auto sn = static_cast<int64_t>(n);
    auto clamp = [&](const Value& v, int64_t def) {
      if (!v.is_number()) return def;
      int64_t i = v.as_int();
      if (i < 0) i += sn;
      if (stepv > 0) return std::clamp<int64_t>(i, 0, sn);
      return std::clamp<int64_t>(i, -1, sn - 1);
    };
    int64_t start = clamp(a, stepv > 0 ? 0 : sn - 1);
    int64_t stop = clamp(b, stepv > 0 ? sn : -1);
    List l;
    std::string s;
    for (int64_t i = start; stepv > 0 ? i < stop : i > stop; i += stepv) {
      if (obj.is_list()) {
        l.push_back(obj.items()[static_cast<size_t>(i)]);
      } else {
        s.append(obj.str(), cps[static_cast<size_t>(i)], cps[static_cast<size_t>(i) + 1] - cps[static_cast<size_t>(i)]);
      }
    }
    return obj.is_list() ? Value::list(std::move(l)) : Value::string(std::move(s));
  }

  Result<Value> eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral: return e.value;
      case Expr::Kind::kList: {
        List l;
        for (const auto& a : e.args) {
          TANDEM_ASSIGN_OR_RETURN(Value v, eval(*a));
          l.push_back(std::move(v));
        }
        return Value::list(std::move(l));
      }
      case Expr::Kind::kDict: {
        Dict d;
        for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
          TANDEM_ASSIGN_OR_RETURN(Value key, eval(*e.args[k]));
          TANDEM_ASSIGN_OR_RETURN(Value v, eval(*e.args[k + 1]));
          d.set(key.to_string(), std::move(v));
        }
        return Value::dict(std::move(d));
      }
      case Expr::Kind::kVar: return lookup(e.name);
      case Expr::Kind::kAttr: {
        TANDEM_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0]));
        if (obj.is_dict()) {
          const Value* v = obj.entries().find(e.name);
          return v ? *v : Value();
        }
        return Value();
      }
      case Expr::Kind::kIndex: {
        TANDEM_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0]));
        TANDEM_ASSIGN_OR_RETURN(Value key, eval(*e.args[1]));
        return subscript(obj, key, e.line);
      }
      case Expr::Kind::kSlice: {
        TANDEM_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0]));
        Value parts[3];
        for (int k = 0; k < 3; ++k) {
          if (e.args[1 + k]) {
            TANDEM_ASSIGN_OR_RETURN(parts[k], eval(*e.args[1 + k]));
          }
        }
        return slice(obj, parts[0], parts[1], parts[2], e.line);
      }
      case Expr::Kind::kCall: return eval_call(e);
      case Expr::Kind::kFilter: {
        TANDEM_ASSIGN_OR_RETURN(Value in, eval(*e.args[0]));
        std::vector<Value> pos;
        KwArgs kw;
        TANDEM_TRY(eval_args(e, pos, kw));
        return apply_filter(e.name, in, pos, kw, e.line, limits_);
      }
      case Expr::Kind::kTest: {
        TANDEM_ASSIGN_OR_RETURN(Value in, eval(*e.args[0]));
        std::vector<Value> pos;
        KwArgs kw;
        TANDEM_TRY(eval_args(e, pos, kw));
        TANDEM_ASSIGN_OR_RETURN(bool r, apply_test(e.name, in, pos, e.line));
        return Value::boolean(r != e.negate);
      }
      case Expr::Kind::kUnary: {
        TANDEM_ASSIGN_OR_RETURN(Value v, eval(*e.args[0]));
        if (e.name == "not") return Value::boolean(!v.truthy());
        if (!v.is_number()) {
          return TANDEM_ERR(kInvalidArgument, "template line {}: unary '{}' on {}", e.line, e.name, v.type_name());
        }
        if (e.name == "+") return v;
        return v.kind() == Value::Kind::kFloat ? Value::number(-v.as_double()) : Value::integer(-v.as_int());
      }
      case Expr::Kind::kBinary: return eval_binary(e);
      case Expr::Kind::kCond: {
        TANDEM_ASSIGN_OR_RETURN(Value c, eval(*e.args[1]));
        if (c.truthy()) return eval(*e.args[0]);
        if (e.args[2]) return eval(*e.args[2]);
        return Value();
      }
    }
    return Value();
  }

  Result<Value> eval_call(const Expr& e) {
    std::vector<Value> pos;
    KwArgs kw;
    const Expr& callee = *e.args[0];
    if (callee.kind == Expr::Kind::kAttr) {
      TANDEM_ASSIGN_OR_RETURN(Value obj, eval(*callee.args[0]));
      TANDEM_TRY(eval_args(e, pos, kw));
      if (obj.is_dict()) {
        const Value* member = obj.entries().find(callee.name);
        if (member && member->is_function()) return member->fn()(pos, kw);
      }
      Result<Value> r = call_method(obj, callee.name, pos, kw, e.line);
      if (!r.is_ok() && r.status().code() == StatusCode::kNotFound) {
        return TANDEM_ERR(kUnsupported, "template line {}: unsupported method '{}' on {}", e.line, callee.name,
                          obj.type_name());
      }
      return r;
    }
    TANDEM_ASSIGN_OR_RETURN(Value fn, eval(callee));
    TANDEM_TRY(eval_args(e, pos, kw));
    if (!fn.is_function()) {
      std::string what = callee.kind == Expr::Kind::kVar ? "'" + callee.name + "'" : std::string("expression");
      return TANDEM_ERR(kUnsupported, "template line {}: {} is not a supported function ({})", e.line, what,
                        fn.type_name());
    }
    return fn.fn()(pos, kw);
  }

  Result<Value> eval_binary(const Expr& e) {
    const std::string& op = e.name;
    TANDEM_ASSIGN_OR_RETURN(Value a, eval(*e.args[0]));
    if (op == "and") return a.truthy() ? eval(*e.args[1]) : a;
    if (op == "or") return a.truthy() ? a : eval(*e.args[1]);
    TANDEM_ASSIGN_OR_RETURN(Value b, eval(*e.args[1]));
    if (op == "==") return Value::boolean(a == b);
    if (op == "!=") return Value::boolean(!(a == b));
    if (op == "~") {
      std::string s = a.to_string() + b.to_string();
      if (s.size() > limits_.max_output) return TANDEM_ERR(kOutOfMemory, "template line {}: string too long", e.line);
      return Value::string(std::move(s));
    }
    if (op == "in" || op == "not in") {
      std::vector<Value> args{b};
      TANDEM_ASSIGN_OR_RETURN(bool r, apply_test("in", a, args, e.line));
      return Value::boolean(op == "in" ? r : !r);
    }
    auto type_error = [&]() {
      return TANDEM_ERR(kInvalidArgument, "template line {}: unsupported operand types for '{}': {} and {}", e.line,
                        op, a.type_name(), b.type_name());
    };
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      int c;
      if (a.is_number() && b.is_number()) {
        double x = a.as_double(), y = b.as_double();
        c = x < y ? -1 : x > y ? 1 : 0;
      } else if (a.is_string() && b.is_string()) {
        c = a.str().compare(b.str());
      } else {
        return type_error();
      }
      bool r = op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
      return Value::boolean(r);
    }
    const bool ints = (a.kind() == Value::Kind::kInt || a.kind() == Value::Kind::kBool) &&
                      (b.kind() == Value::Kind::kInt || b.kind() == Value::Kind::kBool);
    if (op == "+") {
      if (a.is_number() && b.is_number()) {
        return ints ? Value::integer(static_cast<int64_t>(static_cast<uint64_t>(a.as_int()) + static_cast<uint64_t>(b.as_int())))
                    : Value::number(a.as_double() + b.as_double());
      }
      if (a.is_string() && b.is_string()) {
        if (a.str().size() + b.str().size() > limits_.max_output) {
          return TANDEM_ERR(kOutOfMemory, "template line {}: string too long", e.line);
        }
        return Value::string(a.str() + b.str());
      }
      if (a.is_list() && b.is_list()) {
        if (a.items().size() + b.items().size() > limits_.max_range) {
          return TANDEM_ERR(kOutOfMemory, "template line {}: list longer than {}", e.line, limits_.max_range);
        }
        List l = a.items();
        l.insert(l.end(), b.items().begin(), b.items().end());
        return Value::list(std::move(l));
      }
      return type_error();
    }
    if (op == "*" && (a.is_string() || a.is_list()) && b.is_number()) {
      int64_t n = std::max<int64_t>(0, b.as_int());
      size_t unit = a.is_string() ? a.str().size() : a.items().size();
      if (unit != 0 && static_cast<uint64_t>(n) > limits_.max_range / unit) {
        return TANDEM_ERR(kOutOfMemory, "template line {}: repetition too large", e.line);
      }
      if (a.is_string()) {
        std::string s;
        for (int64_t k = 0; k < n; ++k) s += a.str();
        return Value::string(std::move(s));
      }
      List l;
      for (int64_t k = 0; k < n; ++k) l.insert(l.end(), a.items().begin(), a.items().end());
      return Value::list(std::move(l));
    }
    if (!a.is_number() || !b.is_number()) return type_error();
    if (op == "-") {
      return ints ? Value::integer(static_cast<int64_t>(static_cast<uint64_t>(a.as_int()) - static_cast<uint64_t>(b.as_int())))
                  : Value::number(a.as_double() - b.as_double());
    }
    if (op == "*") {
      return ints ? Value::integer(static_cast<int64_t>(static_cast<uint64_t>(a.as_int()) * static_cast<uint64_t>(b.as_int())))
                  : Value::number(a.as_double() * b.as_double());
    }
    if (op == "/") {
      if (b.as_double() == 0.0) return TANDEM_ERR(kInvalidArgument, "template line {}: division by zero", e.line);
      return Value::number(a.as_double() / b.as_double());
    }
    if (op == "//" || op == "%") {
      if (b.as_double() == 0.0) return TANDEM_ERR(kInvalidArgument, "template line {}: division by zero", e.line);
      if (ints) {
        int64_t x = a.as_int(), y = b.as_int();
        if (y == -1) return op == "//" ? Value::integer(static_cast<int64_t>(0ull - static_cast<uint64_t>(x))) : Value::integer(0);
        int64_t q = x / y, r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {  // Python floors toward -infinity
          --q;
          r += y;
        }
        return Value::integer(op == "//" ? q : r);
      }
      double x = a.as_double(), y = b.as_double();
      double q = std::floor(x / y);
      return Value::number(op == "//" ? q : x - q * y);
    }
    if (op == "**") {
      if (ints && b.as_int() >= 0) {
        int64_t r = 1, base = a.as_int();
        for (int64_t k = 0; k < std::min<int64_t>(b.as_int(), 64); ++k) r = static_cast<int64_t>(static_cast<uint64_t>(r) * static_cast<uint64_t>(base));
        return Value::integer(r);
      }
      return Value::number(std::pow(a.as_double(), b.as_double()));
    }
    return TANDEM_ERR(kUnsupported, "template line {}: unsupported operator '{}'", e.line, op);
  }
};

}  // namespace

bool normalize_index(int64_t& i, size_t size) {
  const auto n = static_cast<int64_t>(size);
  if (i < 0) i += n;
  return i >= 0 && i < n;
}

std::vector<size_t> code_point_offsets(const std::string& s) {
  std::vector<size_t> offs;
  for (size_t i = 0; i < s.size();) {
    offs.push_back(i);
    auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    i = std::min(s.size(), i + len);
  }
  offs.push_back(s.size());
  return offs;
}

Result<std::string> render(const Program& program, const Value& context, const RenderLimits& limits) {
  ContainerArena arena;  // declared first: it empties what the evaluator leaves behind
  Evaluator ev(context, limits);
  return ev.run(program);
}

}  // namespace tandem::jinja
