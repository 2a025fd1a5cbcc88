// Pre-tokenizer regex tables and the PCRE2 splitter.
// The regex lists per `tokenizer.ggml.pre` value are the published ones of each
// model family's tokenizer.json (as catalogued by the reference engine);
// "(?i:'s|...)" is spelled out case by case, which is equivalent.
#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>

namespace tandem {
namespace {

// GPT-2: contractions, letters, digits, other symbols, each with an optional
// leading space; whitespace runs not followed by non-space.
constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
// Llama-3 / DBRX (tiktoken cl100k style): numbers in groups of up to 3.
constexpr const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: as Llama-3 with single digits.
constexpr const char* kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

PreTokenizerSpec spec(std::vector<std::string> r, bool ignore_merges = false) {
  return PreTokenizerSpec{std::move(r), ignore_merges};
}

}  // namespace

Result<PreTokenizerSpec> pre_tokenizer_spec(std::string_view name) {
  // A missing `tokenizer.ggml.pre` means "default" (old conversions, e.g. gpt-neox).
  if (name.empty() || name == "default") {
    return spec({R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"});
  }
  if (name == "gpt-2" || name == "phi-2" || name == "mpt" || name == "olmo" || name == "jais" ||
      name == "gpt-neox") {
    return spec({kGpt2});
  }
  if (name == "llama3" || name == "llama-v3" || name == "llama-bpe" || name == "falcon3" ||
      name == "falcon-h1") {
    return spec({kLlama3}, /*ignore_merges=*/true);
  }
  if (name == "dbrx" || name == "smaug-bpe") return spec({kLlama3});
  if (name == "qwen2" || name == "stablelm2" || name == "deepseek-r1-qwen") return spec({kQwen2});
  if (name == "starcoder" || name == "refact" || name == "command-r" || name == "smollm" ||
      name == "codeshell" || name == "exaone" || name == "minerva") {
    return spec({R"(\p{N})", kGpt2});
  }
  if (name == "falcon") {
    return spec({R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"});
  }
  if (name == "deepseek-coder") {
    return spec({"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", "[一-龥ࠀ-一가-퟿]+", R"(\p{N})"});
  }
  if (name == "deepseek-llm") {
    return spec({
        "[\r\n]",
        R"(\s?[)"
        R"(A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF})"
        R"(\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D})"
        R"(\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5})"
        R"(\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5})"
        R"(\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B})"
        R"(\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D})"
        R"(\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D})"
        R"(\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4})"
        R"(\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC})"
        R"(\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115})"
        R"(\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134})"
        R"(\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184})"
        R"(\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3})"
        R"(\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787})"
        R"(\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17})"
        R"(\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3})"
        R"(\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF})"
        R"(\x{1E900}-\x{1E943})"
        R"(]+)",
        R"(\s?[!-/:-~！-／：-～‘-‟　-。]+)",
        R"(\s+$)",
        "[一-龥ࠀ-一가-퟿]+",
        R"(\p{N}+)",
    });
  }
  return TANDEM_ERR(kNotFound,
                    "unknown pre-tokenizer '{}' (tokenizer.ggml.pre); supported: default, gpt-2, "
                    "mpt, gpt-neox, llama-bpe/llama3, dbrx, qwen2, starcoder, refact, falcon, "
                    "deepseek-llm, deepseek-coder",
                    name);
}

struct PreTokenizer::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() { pcre2_code_free(code); }
};

PreTokenizer::~PreTokenizer() {
  for (Compiled* c : regexes_) delete c;
}

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::create(const std::string& name) {
  TANDEM_ASSIGN_OR_RETURN(PreTokenizerSpec s, pre_tokenizer_spec(name));
  return from_regexes(s.regexes, name.empty() ? "default" : name);
}

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::from_regexes(
    const std::vector<std::string>& regexes, std::string name) {
  std::unique_ptr<PreTokenizer> p(new PreTokenizer());
  p->name_ = std::move(name);
  for (const std::string& rx : regexes) {
    int err = 0;
    PCRE2_SIZE err_off = 0;
    // UCP: \s, \d and [[:classes:]] follow Unicode properties. MATCH_INVALID_UTF:
    // invalid bytes never match (they end up in gaps) instead of failing the call.
    // DOLLAR_ENDONLY: '$' is the end of the piece only, as in the original tokenizers.
    pcre2_code* code = pcre2_compile(
        reinterpret_cast<PCRE2_SPTR>(rx.data()), rx.size(),
        PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY, &err, &err_off,
        nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return TANDEM_ERR(kInternal, "pre-tokenizer '{}': regex does not compile at offset {}: {}",
                        p->name_, err_off, reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if unavailable
    auto* c = new Compiled();
    c->code = code;
    p->regexes_.push_back(c);
  }
  return p;
}

namespace {

// Per-thread match resources (a JIT stack may not be shared between threads).
struct MatchScratch {
  pcre2_match_context* ctx = nullptr;
  pcre2_jit_stack* jit = nullptr;
  pcre2_match_data* md = nullptr;
  MatchScratch() {
    ctx = pcre2_match_context_create(nullptr);
    jit = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, nullptr);
    pcre2_jit_stack_assign(ctx, nullptr, jit);
    md = pcre2_match_data_create(16, nullptr);
  }
  ~MatchScratch() {
    pcre2_match_data_free(md);
    pcre2_jit_stack_free(jit);
    pcre2_match_context_free(ctx);
  }
};

}  // namespace

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& out) const {
  thread_local MatchScratch scratch;
  if (text.empty()) return;
  std::vector<std::string_view> cur{text}, next;
  for (const Compiled* c : regexes_) {
    next.clear();
    for (std::string_view piece : cur) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t pos = 0, gap_start = 0;
      while (pos < piece.size()) {
        int rc = pcre2_match(c->code, subject, piece.size(), pos, 0, scratch.md, scratch.ctx);
        if (rc < 0) break;  // no match (or a resource limit: the rest stays one piece)
        PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch.md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) {  // empty match: step over one character
          uint32_t cp;
          pos = ms + utf8_decode(piece, ms, &cp);
          continue;
        }
        if (ms > gap_start) next.push_back(piece.substr(gap_start, ms - gap_start));
        next.push_back(piece.substr(ms, me - ms));
        pos = gap_start = me;
      }
      if (gap_start < piece.size()) next.push_back(piece.substr(gap_start));
    }
    cur.swap(next);
  }
  out.insert(out.end(), cur.begin(), cur.end());
}

// ---- GPT-2 byte alphabet ----

namespace {
struct ByteTables {
  std::array<std::string, 256> utf8;
  std::array<int, 512> inv;  // code points < 512 cover the whole alphabet
  ByteTables() {
    inv.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      uint32_t cp = printable ? static_cast<uint32_t>(b) : 256u + static_cast<uint32_t>(extra++);
      utf8_append(utf8[b], cp);
      inv[cp] = b;
    }
  }
};
const ByteTables& byte_tables() {
  static const ByteTables t;
  return t;
}
}  // namespace

const std::string& byte_to_unicode_utf8(uint8_t b) { return byte_tables().utf8[b]; }

int unicode_to_byte(uint32_t cp) { return cp < 512 ? byte_tables().inv[cp] : -1; }

}  // namespace tandem
