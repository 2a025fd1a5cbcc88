#pragma once
// Regex pre-tokenizers for byte-level BPE, selected by `tokenizer.ggml.pre`.
// A pre-tokenizer is a list of regexes applied in turn: each one splits every
// piece left by the previous one into its matches AND the unmatched gaps
// between them (nothing is dropped), so the pieces always tile the input.
// Regexes run on PCRE2 (UTF + Unicode properties, JIT when available).
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/utf8.h"

namespace tandem {

struct PreTokenizerSpec {
  std::vector<std::string> regexes;
  bool ignore_merges = false;   // a piece that is a whole vocab token is emitted as is
};

// The spec for a `tokenizer.ggml.pre` value; kNotFound naming it when unknown.
Result<PreTokenizerSpec> pre_tokenizer_spec(std::string_view name);

class PreTokenizer {
 public:
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  static Result<std::unique_ptr<PreTokenizer>> create(const std::string& name);
  static Result<std::unique_ptr<PreTokenizer>> from_regexes(const std::vector<std::string>& regexes,
                                                            std::string name);
  // Appends the pieces of `text` (views into it, in order, non-empty) to `out`.
  void split(std::string_view text, std::vector<std::string_view>& out) const;
  const std::string& name() const { return name_; }

 private:
  PreTokenizer() = default;
  struct Compiled;
  std::string name_;
  std::vector<Compiled*> regexes_;
};

// GPT-2 byte-level alphabet: every byte maps to one printable code point
// (bytes 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF map to themselves, the rest to
// U+0100 upwards in byte order). Returns its UTF-8.
const std::string& byte_to_unicode_utf8(uint8_t b);
// Inverse on code points; -1 when the code point is not in the alphabet.
int unicode_to_byte(uint32_t cp);

// utf8_decode / utf8_len / utf8_append: core/utf8.h.

}  // namespace tandem
