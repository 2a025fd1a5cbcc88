// Property test: random regular grammars, rendered both as GBNF and as an
// ECMAScript regex (std::wregex over code points, an independent matcher),
// sampled under the grammar with random logits over the real 100k byte-level
// BPE vocabulary (dbrx, Granite-4.0's). Every completed output must match the
// regex; every token the mask allowed must keep the output a live prefix.
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "runtime/grammar/constraint.h"
#include "tandem/sampler.h"
#include "tokenizer/tokenizer.h"

namespace {

using namespace tandem::grammar;

std::shared_ptr<const GrammarVocab> dbrx_vocab() {
  static std::shared_ptr<const GrammarVocab> v = [] {
    auto f = tandem::gguf::File::open(std::string(TANDEM_FIXTURES) + "/vocab/ggml-vocab-dbrx.gguf");
    EXPECT_TRUE(f.is_ok()) << f.status().message();
    if (!f.is_ok()) return std::shared_ptr<const GrammarVocab>();
    auto t = tandem::Tokenizer::from_gguf(**f);
    EXPECT_TRUE(t.is_ok()) << t.status().message();
    if (!t.is_ok()) return std::shared_ptr<const GrammarVocab>();
    std::vector<std::string> pieces;
    std::vector<bool> eog;
    for (int32_t i = 0; i < (*t)->n_vocab(); ++i) {
      pieces.push_back((*t)->token_to_piece(i, /*special=*/false));
      eog.push_back((*t)->is_eog(i));
    }
    return std::make_shared<const GrammarVocab>(std::move(pieces), std::move(eog));
  }();
  return v;
}

std::wstring utf32(const std::string& s) {
  std::wstring out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
    uint32_t v = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (int k = 1; k < n && i + k < s.size(); ++k) v = (v << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out += static_cast<wchar_t>(v);
    i += static_cast<size_t>(n);
  }
  return out;
}

// Random expression over a small alphabet with multi-byte characters, as a
// (GBNF, wregex) pair with the same language.
struct Expr {
  std::string gbnf;
  std::wstring re;
  bool nullable = false;  // matches "" (then it is not repeated: the parser refuses x* with a nullable x)
};

class Gen {
 public:
  explicit Gen(uint32_t seed) : rng_(seed) {}

  Expr expr(int depth) {
    const int kind = depth <= 0 ? static_cast<int>(pick(2)) : static_cast<int>(pick(5));
    switch (kind) {
      case 0: return literal();
      case 1: return cls();
      case 2: {  // sequence
        Expr a = expr(depth - 1), b = expr(depth - 1);
        return {a.gbnf + " " + b.gbnf, a.re + b.re, a.nullable && b.nullable};
      }
      case 3: {  // alternation
        Expr a = expr(depth - 1), b = expr(depth - 1);
        return {"(" + a.gbnf + " | " + b.gbnf + ")", L"(?:" + a.re + L"|" + b.re + L")", a.nullable || b.nullable};
      }
      default: {  // repetition
        Expr a = expr(depth - 1);
        static const char* ops[] = {"*", "+", "?", "{1,3}", "{2}", "{0,2}"};
        static const wchar_t* wops[] = {L"*", L"+", L"?", L"{1,3}", L"{2}", L"{0,2}"};
        const size_t k = a.nullable ? 4 : pick(6);  // {2} only for a nullable item
        return {"(" + a.gbnf + ")" + ops[k], L"(?:" + a.re + L")" + wops[k], a.nullable || k == 0 || k == 2 || k == 5};
      }
    }
  }

 private:
  size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  // Code points: ASCII letters/digits/punctuation, é (2 bytes), 中 (3 bytes), 😀 (4 bytes).
  uint32_t cp() {
    static const uint32_t pool[] = {'a', 'b', 'c', 'x', '0', '1', ' ', '{', '}', ':', 0xE9, 0x4E2D, 0x1F600};
    return pool[pick(sizeof pool / sizeof pool[0])];
  }
  static std::string gbnf_char(uint32_t c) { return fmt_hex(c); }
  static std::string fmt_hex(uint32_t c) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "\\U%08X", c);
    return buf;
  }
  static std::wstring re_char(uint32_t c) {
    if (std::wstring(L"{}").find(static_cast<wchar_t>(c)) != std::wstring::npos) return std::wstring(L"\\") + static_cast<wchar_t>(c);
    return std::wstring(1, static_cast<wchar_t>(c));
  }
  Expr literal() {
    Expr e{"\"", L""};
    const size_t n = 1 + pick(3);
    for (size_t i = 0; i < n; ++i) {
      const uint32_t c = cp();
      e.gbnf += gbnf_char(c);
      e.re += re_char(c);
    }
    e.gbnf += "\"";
    return e;
  }
  Expr cls() {
    const bool neg = pick(4) == 0;
    Expr e{neg ? "[^" : "[", neg ? L"[^" : L"["};
    const size_t n = 1 + pick(2);
    for (size_t i = 0; i < n; ++i) {
      uint32_t lo = cp(), hi = lo;
      if (pick(2) == 0) hi = lo + static_cast<uint32_t>(pick(40));
      e.gbnf += gbnf_char(lo) + "-" + gbnf_char(hi);
      e.re += re_char(lo) + L"-" + re_char(hi);
    }
    e.gbnf += "]";
    e.re += L"]";
    return e;
  }
  std::mt19937 rng_;
};

TEST(GrammarProperty, RandomGrammarsOutputsMatchTheRegexTwin) {
  auto vocab = dbrx_vocab();
  ASSERT_TRUE(vocab);
  int32_t eos = -1;
  for (int32_t t = 0; t < vocab->n_vocab(); ++t)
    if (vocab->is_eog(t)) eos = t;
  ASSERT_GE(eos, 0) << "the dbrx vocabulary has an end-of-generation token";

  int completed = 0, total = 0;
  double mask_s = 0;
  int steps = 0;
  for (uint32_t seed = 1; seed <= 16; ++seed) {
    Gen gen(seed);
    Expr e = gen.expr(3);
    const std::string text = "root ::= " + e.gbnf + "\n";
    auto c = GrammarConstraint::create(text, vocab, "random");
    ASSERT_TRUE(c.is_ok()) << text << ": " << c.status().message();
    const std::wregex re(e.re, std::regex::ECMAScript);
    for (uint32_t run = 0; run < 3; ++run) {
      tandem::SamplerOptions so;
      so.temperature = 1.0f;
      so.top_k = 0;
      so.top_p = 1.0f;
      so.min_p = 0.0f;
      so.seed = seed * 7 + run;
      so.constraint = *c;
      tandem::Sampler s(so);
      std::mt19937 rng(seed * 131 + run);
      std::normal_distribution<float> nd(0.0f, 2.0f);
      std::vector<float> logits(static_cast<size_t>(vocab->n_vocab()));
      std::string out;
      bool ended = false;
      for (int step = 0; step < 24 && !ended; ++step) {
        for (auto& l : logits) l = nd(rng);
        logits[static_cast<size_t>(eos)] = run == 0 ? 30.0f : 8.0f;  // end soon (run 0) or later
        const auto t0 = std::chrono::steady_clock::now();
        const int32_t t = s.sample(logits.data(), static_cast<int>(logits.size()));
        mask_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        ++steps;
        ASSERT_GE(t, 0) << "no token allowed after '" << out << "' under " << text;
        if (vocab->is_eog(t)) {
          ASSERT_TRUE(s.constraint()->can_end()) << "EOG before the grammar could end: '" << out << "'";
          ended = true;
          break;
        }
        ASSERT_TRUE(s.accept(t)) << "sampled token " << t << " refused";
        out += vocab->piece(t);
      }
      ++total;
      if (ended) {
        ++completed;
        EXPECT_TRUE(std::regex_match(utf32(out), re)) << "output '" << out << "' does not match the regex twin of\n"
                                                      << text;
      }
    }
  }
  EXPECT_GE(completed, total / 2) << "most runs should complete";
  std::printf("random grammars: %d/%d runs completed; %.3f ms per sampling step (100352-token vocab)\n", completed,
              total, 1e3 * mask_s / steps);
}

// The mask equals the per-token twin on the real vocabulary at a few states.
TEST(GrammarProperty, MaskEqualsPerTokenTwinOnRealVocab) {
  auto vocab = dbrx_vocab();
  ASSERT_TRUE(vocab);
  const std::string text =
      "root ::= \"{\" ws \"\\\"name\\\"\" ws \":\" ws str ws \"}\"\nws ::= [ \\n]*\nstr ::= \"\\\"\" [^\"\\\\]* \"\\\"\"";
  auto c = GrammarConstraint::create(text, vocab, "t");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  auto g = parse_gbnf(text, "t");
  ASSERT_TRUE(g.is_ok());
  ParseState st = initial_state(*g);
  auto& gc = **c;
  for (const std::string piece : {"{", " \"", "name", "\":", " \"", "h\xC3", "\xA9llo", "\"", "}"}) {
    std::vector<int32_t> twin;
    for (int32_t t = 0; t < vocab->n_vocab(); ++t) {
      if (vocab->is_eog(t)) {
        if (st.can_end()) twin.push_back(t);
      } else if (!vocab->piece(t).empty() && !advance_bytes(*g, st, vocab->piece(t)).dead()) {
        twin.push_back(t);
      }
    }
    EXPECT_EQ(gc.allowed_tokens(), twin) << "before '" << piece << "'";
    // Advance by the bytes of `piece` through whichever tokens spell it.
    int32_t id = -1;
    for (int32_t t = 0; t < vocab->n_vocab() && id < 0; ++t)
      if (vocab->piece(t) == piece) id = t;
    if (id >= 0) {
      ASSERT_TRUE(gc.accept(id)) << piece;
    } else {
      for (char ch : piece) {
        int32_t b = -1;
        for (int32_t t = 0; t < vocab->n_vocab() && b < 0; ++t)
          if (vocab->piece(t) == std::string(1, ch)) b = t;
        ASSERT_GE(b, 0);
        ASSERT_TRUE(gc.accept(b));
      }
    }
    st = advance_bytes(*g, st, piece);
    ASSERT_FALSE(st.dead());
  }
  EXPECT_TRUE(gc.can_end());
}

}  // namespace
