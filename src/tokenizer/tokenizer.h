#pragma once
// Tokenizers read from GGUF metadata (`tokenizer.ggml.*`):
//   - "llama": SentencePiece-style BPE over Unicode characters, merged by token
//     score, with <0xNN> byte fallback and the leading-space convention
//     (' ' -> U+2581, a U+2581 prefix when add_space_prefix).
//   - "gpt2": byte-level BPE with ranked merges, after a regex pre-tokenizer
//     chosen by `tokenizer.ggml.pre` (see pretokenizer.h).
// Control / user-defined tokens are matched inside text before either model
// runs (control tokens only when the caller asks for it).
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"
#include "tokenizer/merge_table.h"

namespace tandem {

class PreTokenizer;  // pretokenizer.h

// Token types as stored in `tokenizer.ggml.token_type`.
enum class TokenType : int32_t {
  kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6
};

// Heterogeneous-lookup hash so string_view keys need no temporary std::string.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenIndex = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class Tokenizer {
 public:
  enum class Model { kSpm, kBpe };
  static constexpr int32_t kNull = -1;

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Errors name the key (missing, wrong type, unknown model / pre-tokenizer).
  static Result<std::unique_ptr<Tokenizer>> from_gguf(const gguf::File& file);

  // add_special: BOS / EOS as the `tokenizer.ggml.add_bos_token` / `add_eos_token`
  // keys say (model defaults otherwise). parse_special: control tokens written
  // in the text (e.g. "<|im_start|>") become their ids; user-defined tokens are
  // always matched, as the original tokenizers do.
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

  // The bytes a token stands for. Control/unknown tokens give their text when
  // `special`, else "". Out-of-range ids give "".
  std::string token_to_piece(int32_t id, bool special = true) const;
  // Concatenated pieces; the leading space added by add_space_prefix is
  // removed again so that decode(encode(s, ...)) == s. Control tokens are
  // rendered only when `special`.
  std::string decode(const std::vector<int32_t>& ids, bool special = false) const;

  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t bos() const { return bos_; }
  int32_t eos() const { return eos_; }
  int32_t eot() const { return eot_; }
  int32_t unk() const { return unk_; }
  int32_t pad() const { return pad_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }
  bool is_eog(int32_t id) const { return eog_.count(id) != 0; }
  bool is_control(int32_t id) const;
  Model model() const { return model_; }
  const std::string& pre_name() const { return pre_name_; }
  const std::string& chat_template() const { return chat_template_; }  // "" when absent

  // Raw vocabulary access.
  const std::string& token_text(int32_t id) const { return tokens_.at(static_cast<size_t>(id)); }
  TokenType token_type(int32_t id) const { return types_.at(static_cast<size_t>(id)); }
  int32_t find_token(std::string_view text) const;  // kNull when absent

 private:
  Tokenizer();
  struct Fragment {
    int32_t token;           // kNull for a text fragment
    std::string_view text;
  };
  Status load(const gguf::File& file);
  void build_tables();
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;
  void encode_spm(std::string_view text, std::vector<int32_t>& out) const;
  void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;
  void bpe_word(std::string_view word, std::vector<int32_t>& out) const;
  int32_t spm_byte_token(uint8_t b) const;

  Model model_ = Model::kSpm;
  std::string pre_name_;
  std::string chat_template_;
  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  std::vector<uint8_t> strip_;   // per token: bit0 lstrip, bit1 rstrip (around special matches)
  TokenIndex index_;
  std::vector<std::string> pieces_;   // token_to_piece(id, true) cache
  std::vector<int32_t> specials_;     // control/user-defined/unknown ids, longest text first

  // BPE state: merges keyed by (left id, right id) of the interned symbol table
  // (vocab ids first, then merge results that are not in the vocabulary).
  MergeTable merges_;  // (left, right) -> (rank, merged id)
  int32_t byte_token_[256] = {};   // BPE: token of each byte's GPT-2 char; SPM: <0xNN>
  std::unique_ptr<PreTokenizer> pre_;
  bool ignore_merges_ = false;

  int32_t bos_ = kNull, eos_ = kNull, eot_ = kNull, eom_ = kNull, unk_ = kNull, pad_ = kNull;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;
  std::set<int32_t> eog_;
};

// Turns a token stream into text, holding back the bytes of a UTF-8 character
// split across tokens until it is complete (byte-fallback and byte-level BPE
// tokens can end mid-character).
class StreamingDetokenizer {
 public:
  explicit StreamingDetokenizer(const Tokenizer& tok, bool special = false)
      : tok_(tok), special_(special) {}
  // Text that became complete with this token (possibly "").
  std::string push(int32_t id);
  // Whatever is still held back (an incomplete character at end of stream).
  std::string flush();
  void reset();

 private:
  const Tokenizer& tok_;
  bool special_;
  bool first_ = true;
  std::string pending_;
};

// Length of the longest prefix of `s` that does not end inside an incomplete
// (but so far valid) UTF-8 sequence.
size_t utf8_complete_prefix(std::string_view s);

}  // namespace tandem
