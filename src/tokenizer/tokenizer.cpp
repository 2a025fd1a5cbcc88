// Tokenizer: vocabulary loading from GGUF, special-token partitioning,
// encode dispatch, pieces and decoding. The two merge algorithms live in
// spm.cpp and bpe.cpp.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>

#include "core/log.h"
#include "tokenizer/pretokenizer.h"

namespace tandem {
namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

// Texts that end generation when the file does not say so explicitly
// (chat models mark end-of-turn with one of these).
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "<|eom_id|>", "<|return|>", "<|call|>"};
constexpr std::string_view kEotTexts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                          "<|endoftext|>", "<|end_of_text|>", "<EOT>"};

bool is_special_type(TokenType t) {
  return t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown;
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const gguf::File& file) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  Status st = t->load(file);
  if (!st.is_ok()) {
    return Status(st.code(), fmt::format("{}: {}", file.path(), st.message()));
  }
  return t;
}

Status Tokenizer::load(const gguf::File& f) {
  TANDEM_ASSIGN_OR_RETURN(std::string model, f.get_string("tokenizer.ggml.model"));
  if (model == "llama") {
    model_ = Model::kSpm;
  } else if (model == "gpt2") {
    model_ = Model::kBpe;
  } else {
    return TANDEM_ERR(kUnsupported,
                      "unsupported tokenizer model '{}' (tokenizer.ggml.model); supported: llama, gpt2",
                      model);
  }
  TANDEM_ASSIGN_OR_RETURN(pre_name_, f.get_string_or("tokenizer.ggml.pre", ""));
  TANDEM_ASSIGN_OR_RETURN(tokens_, f.get_string_array("tokenizer.ggml.tokens"));
  if (tokens_.empty()) return TANDEM_ERR(kCorrupt, "tokenizer.ggml.tokens is empty");
  const size_t n = tokens_.size();
  if (n > static_cast<size_t>(INT32_MAX / 2)) return TANDEM_ERR(kCorrupt, "vocabulary too large");

  if (f.find("tokenizer.ggml.scores") != nullptr) {
    TANDEM_ASSIGN_OR_RETURN(scores_, f.get_f32_array("tokenizer.ggml.scores"));
    if (scores_.size() < n) {
      return TANDEM_ERR(kCorrupt, "tokenizer.ggml.scores has {} entries for {} tokens", scores_.size(), n);
    }
  }
  scores_.resize(n, 0.0f);
  types_.assign(n, TokenType::kNormal);
  if (f.find("tokenizer.ggml.token_type") != nullptr) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> tt, f.get_int_array("tokenizer.ggml.token_type"));
    if (tt.size() < n) {
      return TANDEM_ERR(kCorrupt, "tokenizer.ggml.token_type has {} entries for {} tokens", tt.size(), n);
    }
    for (size_t i = 0; i < n; ++i) {
      types_[i] = (tt[i] >= 1 && tt[i] <= 6) ? static_cast<TokenType>(tt[i]) : TokenType::kUndefined;
    }
  }
  index_.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    if (tokens_[i].empty()) tokens_[i] = fmt::format("[EMPTY_{}]", i);
    auto [it, fresh] = index_.emplace(tokens_[i], static_cast<int32_t>(i));
    if (!fresh) {
      return TANDEM_ERR(kCorrupt, "tokenizer.ggml.tokens: duplicate token '{}' (ids {} and {})",
                        tokens_[i], it->second, i);
    }
  }

  // Model defaults, then the file's keys.
  bool add_bos_default = model_ == Model::kSpm;
  add_space_prefix_ = model_ == Model::kSpm;
  if (model_ == Model::kSpm) {
    bos_ = 1;
    eos_ = 2;
    unk_ = 0;
  } else {
    TANDEM_ASSIGN_OR_RETURN(PreTokenizerSpec spec, pre_tokenizer_spec(pre_name_));
    ignore_merges_ = spec.ignore_merges;
    if (spec.ignore_merges) add_bos_default = true;  // the llama-3 family starts with BOS
    if (pre_name_.empty()) {
      TANDEM_LOG_WARN("tokenizer.ggml.pre missing; using the 'default' pre-tokenizer");
    }
    TANDEM_ASSIGN_OR_RETURN(pre_, PreTokenizer::from_regexes(spec.regexes, pre_name_.empty() ? "default" : pre_name_));
  }
  auto read_id = [&](std::string_view key, int32_t& id) -> Status {
    if (f.find(key) == nullptr) {
      if (id >= static_cast<int64_t>(n)) id = kNull;
      return Status::ok();
    }
    TANDEM_ASSIGN_OR_RETURN(int64_t v, f.get_int(key));
    if (v >= 0 && v < static_cast<int64_t>(n)) {
      id = static_cast<int32_t>(v);
    } else if (v == -1 || v == 0xFFFFFFFFll) {
      id = kNull;  // "no such token"
    } else {
      TANDEM_LOG_WARN("{} = {} is outside the vocabulary ({} tokens); ignored", key, v, n);
    }
    return Status::ok();
  };
  TANDEM_TRY(read_id("tokenizer.ggml.bos_token_id", bos_));
  TANDEM_TRY(read_id("tokenizer.ggml.eos_token_id", eos_));
  TANDEM_TRY(read_id("tokenizer.ggml.eot_token_id", eot_));
  TANDEM_TRY(read_id("tokenizer.ggml.eom_token_id", eom_));
  TANDEM_TRY(read_id("tokenizer.ggml.unknown_token_id", unk_));
  TANDEM_TRY(read_id("tokenizer.ggml.padding_token_id", pad_));
  TANDEM_ASSIGN_OR_RETURN(add_bos_, f.get_bool_or("tokenizer.ggml.add_bos_token", add_bos_default));
  TANDEM_ASSIGN_OR_RETURN(add_eos_, f.get_bool_or("tokenizer.ggml.add_eos_token", false));
  TANDEM_ASSIGN_OR_RETURN(add_space_prefix_, f.get_bool_or("tokenizer.ggml.add_space_prefix", add_space_prefix_));
  if (add_bos_ && bos_ == kNull) {
    return TANDEM_ERR(kCorrupt, "tokenizer.ggml.add_bos_token is true but there is no valid bos_token_id");
  }
  if (add_eos_ && eos_ == kNull) {
    return TANDEM_ERR(kCorrupt, "tokenizer.ggml.add_eos_token is true but there is no valid eos_token_id");
  }
  TANDEM_ASSIGN_OR_RETURN(chat_template_, f.get_string_or("tokenizer.chat_template", ""));

  // End-of-generation set: explicit ids plus the well-known end-of-turn texts.
  for (std::string_view t : kEotTexts) {  // in order of preference
    if (eot_ != kNull) break;
    if (auto it = index_.find(t); it != index_.end()) eot_ = it->second;
  }
  for (size_t i = 0; i < n; ++i) {
    for (std::string_view t : kEogTexts) {
      if (tokens_[i] == t) {
        eog_.insert(static_cast<int32_t>(i));
        if (types_[i] == TokenType::kNormal) types_[i] = TokenType::kControl;
      }
    }
  }
  for (int32_t id : {eos_, eot_, eom_}) {
    if (id != kNull) eog_.insert(id);
  }

  // Phi-3 strips whitespace to the right of its special tokens.
  strip_.assign(n, 0);
  TANDEM_ASSIGN_OR_RETURN(std::string name, f.get_string_or("general.name", ""));
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });

  if (model_ == Model::kBpe) {
    if (f.find("tokenizer.ggml.merges") == nullptr) {
      return TANDEM_ERR(kNotFound, "tokenizer.ggml.merges missing (required for tokenizer model gpt2)");
    }
    TANDEM_ASSIGN_OR_RETURN(std::vector<std::string> merges, f.get_string_array("tokenizer.ggml.merges"));
    // Intern merge operands; strings outside the vocabulary get ids >= n_vocab.
    TokenIndex extra;
    auto intern = [&](std::string_view s) -> int32_t {
      if (auto it = index_.find(s); it != index_.end()) return it->second;
      auto [it, fresh] = extra.emplace(std::string(s), static_cast<int32_t>(n + extra.size()));
      (void)fresh;
      return it->second;
    };
    merges_.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
      const std::string& m = merges[r];
      size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
      if (sp == std::string::npos) {
        return TANDEM_ERR(kCorrupt, "tokenizer.ggml.merges[{}] = '{}' is not 'left right'", r, m);
      }
      std::string_view l(m.data(), sp), rt(m.data() + sp + 1, m.size() - sp - 1);
      int32_t li = intern(l), ri = intern(rt);
      std::string joined = m.substr(0, sp) + m.substr(sp + 1);
      int32_t mi = intern(joined);
      merges_.insert(MergeTable::key(li, ri), static_cast<int32_t>(r), mi);
    }
  }
  build_tables();
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (int32_t id : specials_) strip_[id] |= 2;
    if (int32_t id = find_token("</s>"); id != kNull) strip_[id] |= 2;
    for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) {
      if (int32_t id = find_token(t); id != kNull) strip_[id] &= static_cast<uint8_t>(~2u);
    }
  }
  return Status::ok();
}

void Tokenizer::build_tables() {
  const int32_t n = n_vocab();
  for (int b = 0; b < 256; ++b) {
    if (model_ == Model::kBpe) {
      byte_token_[b] = find_token(byte_to_unicode_utf8(static_cast<uint8_t>(b)));
    } else {
      int32_t id = find_token(fmt::format("<0x{:02X}>", b));
      if (id == kNull) id = find_token(std::string(1, static_cast<char>(b)));
      byte_token_[b] = id == kNull ? unk_ : id;
    }
  }
  specials_.clear();
  for (int32_t i = 0; i < n; ++i) {
    if (is_special_type(types_[i])) specials_.push_back(i);
  }
  std::stable_sort(specials_.begin(), specials_.end(), [&](int32_t a, int32_t b) {
    return tokens_[a].size() > tokens_[b].size();
  });
  pieces_.resize(n);
  for (int32_t i = 0; i < n; ++i) {
    const std::string& t = tokens_[i];
    std::string& p = pieces_[i];
    switch (types_[i]) {
      case TokenType::kControl:
      case TokenType::kUnknown:
      case TokenType::kUserDefined:
        p = t;
        break;
      case TokenType::kByte: {
        unsigned v = 0;
        if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && std::isxdigit(static_cast<unsigned char>(t[3])) &&
            std::isxdigit(static_cast<unsigned char>(t[4]))) {
          v = static_cast<unsigned>(std::stoul(t.substr(3, 2), nullptr, 16));
          p = std::string(1, static_cast<char>(v));
        } else {
          p = t;
        }
        break;
      }
      case TokenType::kNormal:
        if (model_ == Model::kSpm) {
          for (size_t k = 0; k < t.size();) {
            if (t.compare(k, kSpaceMark.size(), kSpaceMark) == 0) {
              p += ' ';
              k += kSpaceMark.size();
            } else {
              p += t[k++];
            }
          }
        } else {
          // Byte-level: map each alphabet code point back to its byte; code
          // points outside the alphabet are kept as their UTF-8.
          for (size_t k = 0; k < t.size();) {
            uint32_t cp;
            size_t len = utf8_decode(t, k, &cp);
            int b = cp == 0xFFFFFFFFu ? -1 : unicode_to_byte(cp);
            if (b >= 0) {
              p += static_cast<char>(b);
            } else {
              p.append(t, k, len);
            }
            k += len;
          }
        }
        break;
      default:
        break;  // unused / undefined tokens have no text
    }
  }
}

int32_t Tokenizer::find_token(std::string_view text) const {
  auto it = index_.find(text);
  return it == index_.end() ? kNull : it->second;
}

bool Tokenizer::is_control(int32_t id) const {
  return id >= 0 && id < n_vocab() && types_[id] == TokenType::kControl;
}

std::vector<Tokenizer::Fragment> Tokenizer::partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> frags;
  if (!text.empty()) frags.push_back({kNull, text});
  std::vector<Fragment> next;
  for (int32_t id : specials_) {
    TokenType t = types_[id];
    if (!parse_special && t != TokenType::kUserDefined) continue;
    const std::string& s = tokens_[id];
    bool any = false;
    for (const Fragment& fr : frags) {
      if (fr.token == kNull && fr.text.find(s) != std::string_view::npos) {
        any = true;
        break;
      }
    }
    if (!any) continue;
    next.clear();
    for (const Fragment& fr : frags) {
      if (fr.token != kNull) {
        next.push_back(fr);
        continue;
      }
      std::string_view rest = fr.text;
      size_t pos;
      while ((pos = rest.find(s)) != std::string_view::npos) {
        std::string_view left = rest.substr(0, pos);
        if (strip_[id] & 1) {
          while (!left.empty() && std::isspace(static_cast<unsigned char>(left.back()))) left.remove_suffix(1);
        }
        if (!left.empty()) next.push_back({kNull, left});
        next.push_back({id, {}});
        rest = rest.substr(pos + s.size());
        if (strip_[id] & 2) {
          while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.front()))) rest.remove_prefix(1);
        }
      }
      if (!rest.empty()) next.push_back({kNull, rest});
    }
    frags.swap(next);
  }
  return frags;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && add_bos_) out.push_back(bos_);
  std::vector<Fragment> frags = partition(text, parse_special);
  bool prev_special = true;  // SentencePiece: a text run after BOS/special gets the space prefix
  std::string buf;
  for (const Fragment& fr : frags) {
    if (fr.token != kNull) {
      out.push_back(fr.token);
      prev_special = true;
      continue;
    }
    if (model_ == Model::kSpm) {
      buf.clear();
      if (add_space_prefix_ && prev_special) buf += kSpaceMark;
      for (char c : fr.text) {
        if (c == ' ') {
          buf += kSpaceMark;
        } else {
          buf += c;
        }
      }
      encode_spm(buf, out);
    } else {
      encode_bpe(fr.text, out);
    }
    prev_special = false;
  }
  if (add_special && add_eos_) out.push_back(eos_);
  return out;
}

std::string Tokenizer::token_to_piece(int32_t id, bool special) const {
  if (id < 0 || id >= n_vocab()) return {};
  TokenType t = types_[id];
  if (!special && (t == TokenType::kControl || t == TokenType::kUnknown)) return {};
  return pieces_[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool special) const {
  std::string out;
  bool at_text_start = true;  // mirrors encode(): a text run after start/special had ' ' prepended
  for (int32_t id : ids) {
    if (id < 0 || id >= n_vocab()) continue;
    std::string piece = token_to_piece(id, special);
    if (is_special_type(types_[id])) {
      out += piece;
      at_text_start = true;
      continue;
    }
    if (at_text_start && add_space_prefix_ && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    if (!piece.empty() || types_[id] == TokenType::kNormal) at_text_start = false;
    out += piece;
  }
  return out;
}

// ---- streaming ----

size_t utf8_complete_prefix(std::string_view s) {
  // Look at most 3 bytes back for the start of a multi-byte sequence.
  size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    auto c = static_cast<uint8_t>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = utf8_len(c);
    if (need > back && c >= 0xC0) return n - back;  // lead of a sequence not yet complete
    return n;
  }
  return n;
}

std::string StreamingDetokenizer::push(int32_t id) {
  if (id < 0 || id >= tok_.n_vocab()) return {};
  std::string piece = tok_.token_to_piece(id, special_);
  TokenType t = tok_.token_type(id);
  bool special_type = t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown;
  if (special_type) {
    first_ = true;
  } else {
    if (first_ && tok_.add_space_prefix() && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    if (!piece.empty() || t == TokenType::kNormal) first_ = false;
  }
  pending_ += piece;
  size_t k = utf8_complete_prefix(pending_);
  std::string ready = pending_.substr(0, k);
  pending_.erase(0, k);
  return ready;
}

std::string StreamingDetokenizer::flush() {
  std::string r;
  r.swap(pending_);
  return r;
}

void StreamingDetokenizer::reset() {
  pending_.clear();
  first_ = true;
}

}  // namespace tandem
