#pragma once
// Jinja lexer: splits a template into text and tag tokens. Applies whitespace
// control ("{%-", "-%}", "{{-", "-}}", "{#-", "-#}") and the trim_blocks /
// lstrip_blocks settings that chat templates are written for (the first
// newline after a block tag is dropped; spaces before a block tag on its own
// line are dropped).
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tandem::jinja {

struct Token {
  enum class Kind {
    kText,        // literal template text
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kVarBegin,    // {{
    kVarEnd,      // }}
    kName,
    kString,      // value has escapes resolved
    kInt,
    kFloat,
    kOp,          // operators and punctuation: == != <= >= // ** < > + - * / % ~ | . , : ( ) [ ] { } =
    kEnd,
  };
  Kind kind;
  std::string value;
  int line;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

Result<std::vector<Token>> lex(std::string_view src, const LexOptions& opt = {});

}  // namespace tandem::jinja
