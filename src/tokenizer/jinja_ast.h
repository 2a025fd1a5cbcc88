#pragma once
// Syntax tree of the Jinja subset (expressions and statements) and the parser
// entry point.
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "tokenizer/jinja_lexer.h"
#include "tokenizer/jinja_value.h"

namespace tandem::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,   // value
    kList,      // args = items
    kDict,      // args = k0, v0, k1, v1, ...
    kVar,       // name
    kAttr,      // args[0].name
    kIndex,     // args[0][args[1]]
    kSlice,     // args[0][args[1]:args[2]:args[3]] (null = omitted)
    kCall,      // args[0](args[1..npos], kwnames = args[npos+1..])
    kFilter,    // args[0] | name(args[1..npos], kw...)
    kTest,      // args[0] is [not] name(args[1..npos])  (negate)
    kUnary,     // op args[0]: "not", "-", "+"
    kBinary,    // args[0] op args[1]
    kCond,      // args[0] if args[1] else args[2] (args[2] may be null)
  };
  Kind kind;
  int line = 0;
  Value value;
  std::string name;  // variable / attribute / filter / test name, or the operator
  std::vector<ExprPtr> args;
  size_t npos = 0;   // kCall / kFilter / kTest: args[1..npos] positional, the rest keyword
  std::vector<std::string> kwnames;
  bool negate = false;
  int height = 1;    // longest path to a leaf (bounded by the parser)
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind { kText, kOutput, kIf, kFor, kSet, kSetBlock, kBreak, kContinue, kGeneration };
  Kind kind;
  int line = 0;
  std::string text;                // kText
  ExprPtr expr;                    // kOutput value; kSet value; kFor iterable
  std::vector<std::pair<ExprPtr, Body>> branches;  // kIf: if / elif conditions and bodies
  Body body;                       // kFor / kSetBlock / kGeneration body
  Body else_body;                  // kIf / kFor else
  std::vector<std::string> targets;  // kFor loop variables; kSet / kSetBlock target names
  std::string attr;                // kSet: "ns.attr" form -> targets[0] = ns, attr = attr
  ExprPtr filter;                  // kFor: "for x in xs if cond"
};

struct Program {
  Body body;
};

Result<Program> parse_template(std::string_view source);

}  // namespace tandem::jinja
