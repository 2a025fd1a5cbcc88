// Jinja lexer (see jinja_lexer.h).
#include "tokenizer/jinja_lexer.h"

#include <cctype>

namespace tandem::jinja {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

void rstrip_all(std::string& s) {
  while (!s.empty() && is_space(s.back())) s.pop_back();
}

// lstrip_blocks: drop spaces/tabs between the last newline (or template start)
// and the tag, if there is nothing else on that line.
void lstrip_line(std::string& s, bool at_template_start_line) {
  size_t k = s.size();
  while (k > 0 && (s[k - 1] == ' ' || s[k - 1] == '\t')) --k;
  if (k == 0 ? at_template_start_line : s[k - 1] == '\n') s.resize(k);
}

}  // namespace

Result<std::vector<Token>> lex(std::string_view src, const LexOptions& opt) {
  std::vector<Token> out;
  int line = 1;
  size_t i = 0;
  bool strip_next_text = false;  // after "-%}" / "-}}" / "-#}"
  bool trim_newline = false;     // after "%}" with trim_blocks
  bool text_is_template_start = true;

  while (i < src.size()) {
    // ---- text up to the next tag ----
    size_t start = i;
    size_t tag = src.find('{', i);
    while (tag != std::string_view::npos && tag + 1 < src.size() && src[tag + 1] != '%' &&
           src[tag + 1] != '{' && src[tag + 1] != '#') {
      tag = src.find('{', tag + 1);
    }
    if (tag != std::string_view::npos && tag + 1 >= src.size()) tag = std::string_view::npos;
    size_t text_end = tag == std::string_view::npos ? src.size() : tag;
    std::string text(src.substr(start, text_end - start));
    for (char c : text) line += c == '\n';
    if (strip_next_text) {
      size_t k = 0;
      while (k < text.size() && is_space(text[k])) ++k;
      text.erase(0, k);
    } else if (trim_newline) {
      if (text.rfind("\r\n", 0) == 0) {
        text.erase(0, 2);
      } else if (!text.empty() && text[0] == '\n') {
        text.erase(0, 1);
      }
    }
    strip_next_text = trim_newline = false;
    i = text_end;
    if (i >= src.size()) {
      if (!text.empty()) out.push_back({Token::Kind::kText, std::move(text), line});
      break;
    }
    // ---- a tag ----
    char kind = src[i + 1];  // '%', '{' or '#'
    i += 2;
    bool minus = i < src.size() && src[i] == '-';
    bool plus = i < src.size() && src[i] == '+';
    if (minus || plus) ++i;
    if (minus) {
      rstrip_all(text);
    } else if (!plus && opt.lstrip_blocks && (kind == '%' || kind == '#')) {
      lstrip_line(text, text_is_template_start && text.find('\n') == std::string::npos);
    }
    if (!text.empty()) out.push_back({Token::Kind::kText, std::move(text), line});
    text_is_template_start = false;

    if (kind == '#') {
      size_t end = src.find("#}", i);
      if (end == std::string_view::npos) return TANDEM_ERR(kInvalidArgument, "template line {}: unclosed comment", line);
      for (size_t k = i; k < end; ++k) line += src[k] == '\n';
      strip_next_text = end > i && src[end - 1] == '-';
      trim_newline = !strip_next_text && opt.trim_blocks;
      i = end + 2;
      continue;
    }
    const bool block = kind == '%';
    out.push_back({block ? Token::Kind::kBlockBegin : Token::Kind::kVarBegin, "", line});
    int depth = 0;  // bracket nesting, so "}}" inside a dict literal does not end the tag
    bool closed = false;
    while (i < src.size()) {
      char c = src[i];
      if (is_space(c)) {
        line += c == '\n';
        ++i;
        continue;
      }
      // end of tag (optionally with '-')
      auto ends_at = [&](size_t p) {
        if (block) return p + 1 < src.size() && src[p] == '%' && src[p + 1] == '}';
        return depth == 0 && p + 1 < src.size() && src[p] == '}' && src[p + 1] == '}';
      };
      if (c == '-' && ends_at(i + 1)) {
        strip_next_text = true;
        i += 3;
        closed = true;
        break;
      }
      if (ends_at(i)) {
        i += 2;
        closed = true;
        if (block) trim_newline = opt.trim_blocks;
        break;
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t s = i;
        while (i < src.size() && (std::isalnum(static_cast<unsigned char>(src[i])) || src[i] == '_')) ++i;
        out.push_back({Token::Kind::kName, std::string(src.substr(s, i - s)), line});
        continue;
      }
      if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t s = i;
        bool is_float = false;
        while (i < src.size() && (std::isdigit(static_cast<unsigned char>(src[i])) || src[i] == '_')) ++i;
        if (i + 1 < src.size() && src[i] == '.' && std::isdigit(static_cast<unsigned char>(src[i + 1]))) {
          is_float = true;
          ++i;
          while (i < src.size() && std::isdigit(static_cast<unsigned char>(src[i]))) ++i;
        }
        if (i < src.size() && (src[i] == 'e' || src[i] == 'E')) {
          size_t k = i + 1;
          if (k < src.size() && (src[k] == '+' || src[k] == '-')) ++k;
          if (k < src.size() && std::isdigit(static_cast<unsigned char>(src[k]))) {
            is_float = true;
            i = k;
            while (i < src.size() && std::isdigit(static_cast<unsigned char>(src[i]))) ++i;
          }
        }
        std::string num;
        for (size_t k = s; k < i; ++k) {
          if (src[k] != '_') num += src[k];
        }
        out.push_back({is_float ? Token::Kind::kFloat : Token::Kind::kInt, num, line});
        continue;
      }
      if (c == '\'' || c == '"') {
        char q = c;
        ++i;
        std::string s;
        bool ok = false;
        while (i < src.size()) {
          char d = src[i++];
          if (d == q) {
            ok = true;
            break;
          }
          if (d == '\n') ++line;
          if (d == '\\' && i < src.size()) {
            char e = src[i++];
            switch (e) {
              case 'n': s += '\n'; break;
              case 't': s += '\t'; break;
              case 'r': s += '\r'; break;
              case '\\': s += '\\'; break;
              case '\'': s += '\''; break;
              case '"': s += '"'; break;
              case '\n': ++line; break;  // line continuation
              default: s += '\\'; s += e; break;
            }
            continue;
          }
          s += d;
        }
        if (!ok) return TANDEM_ERR(kInvalidArgument, "template line {}: unterminated string literal", line);
        out.push_back({Token::Kind::kString, std::move(s), line});
        continue;
      }
      static constexpr std::string_view kTwo[] = {"==", "!=", "<=", ">=", "//", "**"};
      bool two = false;
      for (std::string_view op : kTwo) {
        if (src.substr(i, 2) == op) {
          out.push_back({Token::Kind::kOp, std::string(op), line});
          i += 2;
          two = true;
          break;
        }
      }
      if (two) continue;
      if (std::string_view("<>+-*/%~|.,:()[]{}=").find(c) != std::string_view::npos) {
        if (c == '(' || c == '[' || c == '{') ++depth;
        if (c == ')' || c == ']' || c == '}') --depth;
        out.push_back({Token::Kind::kOp, std::string(1, c), line});
        ++i;
        continue;
      }
      return TANDEM_ERR(kInvalidArgument, "template line {}: unexpected character '{}' inside a tag", line, c);
    }
    if (!closed) {
      return TANDEM_ERR(kInvalidArgument, "template line {}: unclosed {} tag", line, block ? "{% %}" : "{{ }}");
    }
    out.push_back({block ? Token::Kind::kBlockEnd : Token::Kind::kVarEnd, "", line});
  }
  out.push_back({Token::Kind::kEnd, "", line});
  return out;
}

}  // namespace tandem::jinja
