// Recursive-descent parser for the Jinja subset. Operator precedence follows
// Jinja2: conditional < or < and < not < comparisons / in < + - < ~ < * / // %
// < ** < unary minus < postfix (attribute, subscript, call, filter, test).
#include <algorithm>
#include <set>

#include "tokenizer/jinja_ast.h"

namespace tandem::jinja {
namespace {

constexpr int kMaxDepth = 200;    // nesting limit so hostile templates cannot overflow the stack
constexpr int kMaxHeight = 1000;  // expression tree height (long a.b.c... or a+b+c... chains)

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  Result<Program> run() {
    Program p;
    std::string end_tag;
    TANDEM_TRY(parse_body(p.body, {}, &end_tag));
    return p;
  }

 private:
  using Tk = Token::Kind;
  std::vector<Token> t_;
  size_t p_ = 0;
  int depth_ = 0;

  const Token& cur() const { return t_[p_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  bool is_op(const char* op) const { return cur().kind == Tk::kOp && cur().value == op; }
  bool is_name(const char* n) const { return cur().kind == Tk::kName && cur().value == n; }

  Status error(const std::string& what) const {
    std::string near = cur().kind == Tk::kEnd ? "end of template" : "'" + cur().value + "'";
    if (cur().kind == Tk::kBlockEnd) near = "'%}'";
    if (cur().kind == Tk::kVarEnd) near = "'}}'";
    return TANDEM_ERR(kInvalidArgument, "template line {}: {} (near {})", cur().line, what, near);
  }
  Status expect_op(const char* op) {
    if (!is_op(op)) return error(fmt::format("expected '{}'", op));
    ++p_;
    return Status::ok();
  }
  Status expect_block_end() {
    if (cur().kind != Tk::kBlockEnd) return error("expected '%}'");
    ++p_;
    return Status::ok();
  }
  Result<std::string> expect_name() {
    if (cur().kind != Tk::kName) return error("expected a name");
    return t_[p_++].value;
  }

  // Parses nodes until a block tag whose keyword is in `ends` (consumed up to
  // the keyword; the caller parses the rest of that tag).
  Status parse_body(Body& out, const std::set<std::string>& ends, std::string* end_tag) {
    if (++depth_ > kMaxDepth) return error("blocks nested too deeply");
    while (true) {
      const Token& tk = cur();
      if (tk.kind == Tk::kEnd) {
        if (!ends.empty()) return error(fmt::format("missing '{{% {} %}}'", *ends.rbegin()));
        break;
      }
      if (tk.kind == Tk::kText) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kText;
        n->line = tk.line;
        n->text = tk.value;
        out.push_back(std::move(n));
        ++p_;
        continue;
      }
      if (tk.kind == Tk::kVarBegin) {
        ++p_;
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kOutput;
        n->line = tk.line;
        TANDEM_ASSIGN_OR_RETURN(n->expr, parse_expr());
        if (cur().kind != Tk::kVarEnd) return error("expected '}}'");
        ++p_;
        out.push_back(std::move(n));
        continue;
      }
      if (tk.kind != Tk::kBlockBegin) return error("unexpected token");
      ++p_;
      if (cur().kind != Tk::kName) return error("expected a statement keyword");
      std::string kw = cur().value;
      if (ends.count(kw)) {
        ++p_;
        *end_tag = kw;
        break;
      }
      ++p_;
      NodePtr n;
      TANDEM_ASSIGN_OR_RETURN(n, parse_statement(kw, tk.line));
      out.push_back(std::move(n));
    }
    --depth_;
    return Status::ok();
  }

  Result<NodePtr> parse_statement(const std::string& kw, int line) {
    auto n = std::make_unique<Node>();
    n->line = line;
    std::string end;
    if (kw == "if") {
      n->kind = Node::Kind::kIf;
      while (true) {
        ExprPtr cond;
        TANDEM_ASSIGN_OR_RETURN(cond, parse_expr());
        TANDEM_TRY(expect_block_end());
        Body body;
        TANDEM_TRY(parse_body(body, {"elif", "else", "endif"}, &end));
        n->branches.emplace_back(std::move(cond), std::move(body));
        if (end == "elif") continue;
        if (end == "else") {
          TANDEM_TRY(expect_block_end());
          TANDEM_TRY(parse_body(n->else_body, {"endif"}, &end));
        }
        break;
      }
      TANDEM_TRY(expect_block_end());
      return n;
    }
    if (kw == "for") {
      n->kind = Node::Kind::kFor;
      do {
        TANDEM_ASSIGN_OR_RETURN(std::string v, expect_name());
        n->targets.push_back(v);
        if (!is_op(",")) break;
        ++p_;
      } while (true);
      if (!is_name("in")) return error("expected 'in' in for loop");
      ++p_;
      TANDEM_ASSIGN_OR_RETURN(n->expr, parse_or());  // no conditional here: "if" filters the loop
      if (is_name("if")) {
        ++p_;
        TANDEM_ASSIGN_OR_RETURN(n->filter, parse_or());
      }
      if (is_name("recursive")) return error("unsupported construct 'for ... recursive'");
      TANDEM_TRY(expect_block_end());
      TANDEM_TRY(parse_body(n->body, {"else", "endfor"}, &end));
      if (end == "else") {
        TANDEM_TRY(expect_block_end());
        TANDEM_TRY(parse_body(n->else_body, {"endfor"}, &end));
      }
      TANDEM_TRY(expect_block_end());
      return n;
    }
    if (kw == "set") {
      TANDEM_ASSIGN_OR_RETURN(std::string target, expect_name());
      n->targets.push_back(target);
      if (is_op(".")) {
        ++p_;
        TANDEM_ASSIGN_OR_RETURN(n->attr, expect_name());
      } else {
        while (is_op(",")) {
          ++p_;
          TANDEM_ASSIGN_OR_RETURN(std::string more, expect_name());
          n->targets.push_back(more);
        }
      }
      if (cur().kind == Tk::kBlockEnd && n->attr.empty() && n->targets.size() == 1) {
        ++p_;
        n->kind = Node::Kind::kSetBlock;
        TANDEM_TRY(parse_body(n->body, {"endset"}, &end));
        TANDEM_TRY(expect_block_end());
        return n;
      }
      n->kind = Node::Kind::kSet;
      TANDEM_TRY(expect_op("="));
      TANDEM_ASSIGN_OR_RETURN(n->expr, parse_tuple_or_expr());
      TANDEM_TRY(expect_block_end());
      return n;
    }
    if (kw == "break" || kw == "continue") {
      n->kind = kw == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      TANDEM_TRY(expect_block_end());
      return n;
    }
    if (kw == "generation") {  // transformers' assistant-mask marker: render the body as is
      n->kind = Node::Kind::kGeneration;
      TANDEM_TRY(expect_block_end());
      TANDEM_TRY(parse_body(n->body, {"endgeneration"}, &end));
      TANDEM_TRY(expect_block_end());
      return n;
    }
    return TANDEM_ERR(kUnsupported, "template line {}: unsupported construct '{{% {} %}}'", line, kw);
  }

  // "a, b" on the right of set builds a list (tuple).
  Result<ExprPtr> parse_tuple_or_expr() {
    TANDEM_ASSIGN_OR_RETURN(ExprPtr first, parse_expr());
    if (!is_op(",")) return first;
    auto l = make(Expr::Kind::kList);
    l->args.push_back(std::move(first));
    while (is_op(",")) {
      ++p_;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr e, parse_expr());
      l->args.push_back(std::move(e));
    }
    return l;
  }

  ExprPtr make(Expr::Kind k) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = cur().line;
    return e;
  }
  // Sets e.height from its children; evaluation and destruction recurse over
  // the tree, so its height is bounded.
  Status seal(Expr& e) {
    int h = 0;
    for (const ExprPtr& a : e.args) {
      if (a) h = std::max(h, a->height);
    }
    e.height = h + 1;
    if (e.height > kMaxHeight) return error("expression too long");
    return Status::ok();
  }
  Result<ExprPtr> binary(std::string op, ExprPtr a, ExprPtr b) {
    auto e = make(Expr::Kind::kBinary);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    TANDEM_TRY(seal(*e));
    return e;
  }

  Result<ExprPtr> parse_expr() {
    if (++depth_ > kMaxDepth) return error("expression nested too deeply");
    TANDEM_ASSIGN_OR_RETURN(ExprPtr e, parse_or());
    while (is_name("if")) {
      ++p_;
      auto c = make(Expr::Kind::kCond);
      TANDEM_ASSIGN_OR_RETURN(ExprPtr cond, parse_or());
      ExprPtr other;
      if (is_name("else")) {
        ++p_;
        TANDEM_ASSIGN_OR_RETURN(other, parse_expr());
      }
      c->args.push_back(std::move(e));
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(other));
      TANDEM_TRY(seal(*c));
      e = std::move(c);
    }
    --depth_;
    return e;
  }
  Result<ExprPtr> parse_or() {
    TANDEM_ASSIGN_OR_RETURN(ExprPtr e, parse_and());
    while (is_name("or")) {
      ++p_;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr r, parse_and());
      TANDEM_ASSIGN_OR_RETURN(e, binary("or", std::move(e), std::move(r)));
    }
    return e;
  }
  Result<ExprPtr> parse_and() {
    TANDEM_ASSIGN_OR_RETURN(ExprPtr e, parse_not());
    while (is_name("and")) {
      ++p_;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr r, parse_not());
      TANDEM_ASSIGN_OR_RETURN(e, binary("and", std::move(e), std::move(r)));
    }
    return e;
  }
  Result<ExprPtr> parse_not() {
    if (is_name("not")) {
      if (++depth_ > kMaxDepth) return error("expression nested too deeply");
      auto e = make(Expr::Kind::kUnary);
      ++p_;
      e->name = "not";
      TANDEM_ASSIGN_OR_RETURN(ExprPtr a, parse_not());
      e->args.push_back(std::move(a));
      TANDEM_TRY(seal(*e));
      --depth_;
      return e;
    }
    return parse_compare();
  }
  Result<ExprPtr> parse_compare() {
    TANDEM_ASSIGN_OR_RETURN(ExprPtr e, parse_math1());
    while (true) {
      std::string op;
      if (cur().kind == Tk::kOp && (cur().value == "==" || cur().value == "!=" || cur().value == "<" ||
                                    cur().value == ">" || cur().value == "<=" || cur().value == ">=")) {
        op = cur().value;
        ++p_;
      } else if (is_name("in")) {
        op = "in";
        ++p_;
      } else if (is_name("not") && peek().kind == Tk::kName && peek().value == "in") {
        op = "not in";
        p_ += 2;
      } else {
        break;
      }
      TANDEM_ASSIGN_OR_RETURN(ExprPtr r, parse_math1());
      TANDEM_ASSIGN_OR_RETURN(e, binary(op, std::move(e), std::move(r)));
    }
    return e;
  }
  Result<ExprPtr> parse_math1() {
    TANDEM_ASSIGN_OR_RETURN(ExprPtr e, parse_concat());
    while (is_op("+") || is_op("-")) {
      std::string op = t_[p_++].value;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr r, parse_concat());
      TANDEM_ASSIGN_OR_RETURN(e, binary(op, std::move(e), std::move(r)));
    }
    return e;
  }
  Result<ExprPtr> parse_concat() {
    TANDEM_ASSIGN_OR_RETURN(ExprPtr e, parse_math2());
    while (is_op("~")) {
      ++p_;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr r, parse_math2());
      TANDEM_ASSIGN_OR_RETURN(e, binary("~", std::move(e), std::move(r)));
    }
    return e;
  }
  Result<ExprPtr> parse_math2() {
    TANDEM_ASSIGN_OR_RETURN(ExprPtr e, parse_pow());
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = t_[p_++].value;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr r, parse_pow());
      TANDEM_ASSIGN_OR_RETURN(e, binary(op, std::move(e), std::move(r)));
    }
    return e;
  }
  Result<ExprPtr> parse_pow() {
    TANDEM_ASSIGN_OR_RETURN(ExprPtr e, parse_unary());
    while (is_op("**")) {
      ++p_;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr r, parse_unary());
      TANDEM_ASSIGN_OR_RETURN(e, binary("**", std::move(e), std::move(r)));
    }
    return e;
  }
  Result<ExprPtr> parse_unary() {
    if (is_op("-") || is_op("+")) {
      if (++depth_ > kMaxDepth) return error("expression nested too deeply");
      auto e = make(Expr::Kind::kUnary);
      e->name = t_[p_++].value;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr a, parse_unary());
      e->args.push_back(std::move(a));
      TANDEM_TRY(seal(*e));
      --depth_;
      return e;
    }
    TANDEM_ASSIGN_OR_RETURN(ExprPtr e, parse_primary());
    return parse_postfix(std::move(e));
  }

  // Call arguments after '(' up to ')': positional first, then name=value.
  Status parse_call_args(Expr& e) {
    TANDEM_TRY(expect_op("("));
    std::vector<ExprPtr> pos, kw;
    while (!is_op(")")) {
      if (cur().kind == Tk::kName && peek().kind == Tk::kOp && peek().value == "=") {
        e.kwnames.push_back(cur().value);
        p_ += 2;
        TANDEM_ASSIGN_OR_RETURN(ExprPtr v, parse_expr());
        kw.push_back(std::move(v));
      } else {
        if (!kw.empty()) return error("positional argument after keyword argument");
        TANDEM_ASSIGN_OR_RETURN(ExprPtr v, parse_expr());
        pos.push_back(std::move(v));
      }
      if (is_op(",")) {
        ++p_;
      } else if (!is_op(")")) {
        return error("expected ',' or ')' in argument list");
      }
    }
    ++p_;
    e.npos = pos.size();
    for (auto& a : pos) e.args.push_back(std::move(a));
    for (auto& a : kw) e.args.push_back(std::move(a));
    return Status::ok();
  }

  Result<ExprPtr> parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        ++p_;
        auto a = make(Expr::Kind::kAttr);
        if (cur().kind == Tk::kInt) {  // x.0 == x[0]
          a->kind = Expr::Kind::kIndex;
          a->args.push_back(std::move(e));
          auto lit = make(Expr::Kind::kLiteral);
          try {  // an attribute index past int64 is a template error, not a crash
            lit->value = Value::integer(std::stoll(t_[p_].value));
          } catch (...) {
            return error("integer index out of range");
          }
          ++p_;
          a->args.push_back(std::move(lit));
          TANDEM_TRY(seal(*a));
          e = std::move(a);
          continue;
        }
        TANDEM_ASSIGN_OR_RETURN(a->name, expect_name());
        a->args.push_back(std::move(e));
        TANDEM_TRY(seal(*a));
        e = std::move(a);
      } else if (is_op("[")) {
        ++p_;
        ExprPtr parts[3];
        bool slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!is_op(":") && !is_op("]")) {
            TANDEM_ASSIGN_OR_RETURN(parts[k], parse_expr());
          }
          if (is_op(":") && k < 2) {
            slice = true;
            ++p_;
            continue;
          }
          break;
        }
        TANDEM_TRY(expect_op("]"));
        auto s = make(slice ? Expr::Kind::kSlice : Expr::Kind::kIndex);
        s->args.push_back(std::move(e));
        if (!slice && !parts[0]) return error("empty subscript");
        s->args.push_back(std::move(parts[0]));
        if (slice) {
          s->args.push_back(std::move(parts[1]));
          s->args.push_back(std::move(parts[2]));
        }
        TANDEM_TRY(seal(*s));
        e = std::move(s);
      } else if (is_op("(")) {
        auto c = make(Expr::Kind::kCall);
        c->args.push_back(std::move(e));
        TANDEM_TRY(parse_call_args(*c));
        TANDEM_TRY(seal(*c));
        e = std::move(c);
      } else if (is_op("|")) {
        ++p_;
        auto f = make(Expr::Kind::kFilter);
        TANDEM_ASSIGN_OR_RETURN(f->name, expect_name());
        f->args.push_back(std::move(e));
        if (is_op("(")) TANDEM_TRY(parse_call_args(*f));
        TANDEM_TRY(seal(*f));
        e = std::move(f);
      } else if (is_name("is")) {
        ++p_;
        auto t = make(Expr::Kind::kTest);
        if (is_name("not")) {
          t->negate = true;
          ++p_;
        }
        // "none", "true", "false" are test names here even though they are literals elsewhere.
        TANDEM_ASSIGN_OR_RETURN(t->name, expect_name());
        t->args.push_back(std::move(e));
        if (is_op("(")) {
          TANDEM_TRY(parse_call_args(*t));
        } else if (cur().kind == Tk::kString || cur().kind == Tk::kInt || cur().kind == Tk::kFloat) {
          // "x is divisibleby 3", "x is equalto 'a'": one bare argument
          TANDEM_ASSIGN_OR_RETURN(ExprPtr arg, parse_primary());
          t->args.push_back(std::move(arg));
          t->npos = 1;
        }
        TANDEM_TRY(seal(*t));
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  Result<ExprPtr> parse_primary() {
    const Token& tk = cur();
    if (++depth_ > kMaxDepth) return error("expression nested too deeply");
    ExprPtr e;
    switch (tk.kind) {
      case Tk::kString: {
        e = make(Expr::Kind::kLiteral);
        std::string s = tk.value;
        ++p_;
        while (cur().kind == Tk::kString) s += t_[p_++].value;  // adjacent literals concatenate
        e->value = Value::string(std::move(s));
        break;
      }
      case Tk::kInt:
        e = make(Expr::Kind::kLiteral);
        try {
          e->value = Value::integer(std::stoll(tk.value));
        } catch (...) {
          return error("integer literal out of range");
        }
        ++p_;
        break;
      case Tk::kFloat:
        e = make(Expr::Kind::kLiteral);
        try {
          e->value = Value::number(std::stod(tk.value));
        } catch (...) {
          return error("float literal out of range");
        }
        ++p_;
        break;
      case Tk::kName: {
        const std::string& n = tk.value;
        e = make(Expr::Kind::kLiteral);
        if (n == "true" || n == "True") {
          e->value = Value::boolean(true);
        } else if (n == "false" || n == "False") {
          e->value = Value::boolean(false);
        } else if (n == "none" || n == "None") {
          e->value = Value::none();
        } else {
          e->kind = Expr::Kind::kVar;
          e->name = n;
        }
        ++p_;
        break;
      }
      case Tk::kOp:
        if (tk.value == "(") {
          ++p_;
          TANDEM_ASSIGN_OR_RETURN(e, parse_expr());
          if (is_op(",")) {  // tuple
            auto l = make(Expr::Kind::kList);
            l->args.push_back(std::move(e));
            while (is_op(",")) {
              ++p_;
              if (is_op(")")) break;
              TANDEM_ASSIGN_OR_RETURN(ExprPtr item, parse_expr());
              l->args.push_back(std::move(item));
            }
            e = std::move(l);
          }
          TANDEM_TRY(expect_op(")"));
          break;
        }
        if (tk.value == "[") {
          ++p_;
          e = make(Expr::Kind::kList);
          while (!is_op("]")) {
            TANDEM_ASSIGN_OR_RETURN(ExprPtr item, parse_expr());
            e->args.push_back(std::move(item));
            if (is_op(",")) {
              ++p_;
            } else if (!is_op("]")) {
              return error("expected ',' or ']' in list");
            }
          }
          ++p_;
          break;
        }
        if (tk.value == "{") {
          ++p_;
          e = make(Expr::Kind::kDict);
          while (!is_op("}")) {
            TANDEM_ASSIGN_OR_RETURN(ExprPtr k, parse_expr());
            TANDEM_TRY(expect_op(":"));
            TANDEM_ASSIGN_OR_RETURN(ExprPtr v, parse_expr());
            e->args.push_back(std::move(k));
            e->args.push_back(std::move(v));
            if (is_op(",")) {
              ++p_;
            } else if (!is_op("}")) {
              return error("expected ',' or '}' in dict");
            }
          }
          ++p_;
          break;
        }
        return error("unexpected operator");
      default:
        return error("expected an expression");
    }
    --depth_;
    TANDEM_TRY(seal(*e));
    return e;
  }
};

}  // namespace

Result<Program> parse_template(std::string_view source) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<Token> toks, lex(source));
  Parser p(std::move(toks));
  return p.run();
}

}  // namespace tandem::jinja
