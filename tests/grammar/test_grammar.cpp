// GBNF parser errors, the matcher on hand-written cases (languages worked out
// by hand from the grammar text), partial UTF-8, and token masking checked
// against a per-token twin (each token's bytes run through the matcher
// directly, no trie, no automaton).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "runtime/grammar/constraint.h"
#include "runtime/grammar/gbnf.h"
#include "runtime/grammar/matcher.h"
#include "tandem/sampler.h"

namespace {

using namespace tandem::grammar;

Grammar must_parse(const std::string& text) {
  auto g = parse_gbnf(text, "test");
  EXPECT_TRUE(g.is_ok()) << g.status().message();
  return g.is_ok() ? std::move(g).value() : Grammar{};
}

std::string parse_error(const std::string& text) {
  auto g = parse_gbnf(text, "test.gbnf");
  return g.is_ok() ? std::string("<parsed>") : g.status().message();
}

bool prefix_ok(const Grammar& g, const std::string& s) { return !advance_bytes(g, initial_state(g), s).dead(); }

TEST(Gbnf, MalformedGrammarsNameTheProblem) {
  EXPECT_NE(parse_error("root ::= foo").find("rule 'foo' is used but not defined"), std::string::npos);
  EXPECT_NE(parse_error("start ::= \"a\"").find("no 'root' rule"), std::string::npos);
  EXPECT_NE(parse_error("root ::= root \"a\" | \"b\"").find("'root' is left-recursive"), std::string::npos);
  EXPECT_NE(parse_error("root ::= x\nx ::= \"a\"? root").find("left-recursive"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"abc").find("unterminated string literal"), std::string::npos);
  EXPECT_NE(parse_error("root ::= [a-z").find("unterminated character class"), std::string::npos);
  EXPECT_NE(parse_error("root ::= (\"a\" | \"b\"").find("missing ')'"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"a\"{3,2}").find("max < min"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"a\"\nroot ::= \"b\"").find("defined twice"), std::string::npos);
  EXPECT_NE(parse_error("root = \"a\"").find("expected '::='"), std::string::npos);
  EXPECT_NE(parse_error("root ::= [z-a]").find("reversed"), std::string::npos);
  EXPECT_NE(parse_error("").find("empty"), std::string::npos);
  // Errors carry the line number.
  EXPECT_NE(parse_error("root ::= a\na ::= \"x\"\nb ::= \"\\q\"").find("line 3"), std::string::npos);
}

TEST(Gbnf, LiteralsAlternationGrouping) {
  Grammar g = must_parse(R"(
    # a comment
    root ::= greeting ("," " "? name)+ "!"   # trailing comment
    greeting ::= "hi" | "hello"
    name ::= [A-Z] [a-z]*
  )");
  EXPECT_TRUE(grammar_accepts(g, "hi,Bob!"));
  EXPECT_TRUE(grammar_accepts(g, "hello, Ann,Z!"));
  EXPECT_FALSE(grammar_accepts(g, "hello!"));         // + needs one name
  EXPECT_FALSE(grammar_accepts(g, "hi,bob!"));        // capital first
  EXPECT_FALSE(grammar_accepts(g, "hi,Bob"));         // missing "!"
  EXPECT_FALSE(grammar_accepts(g, "hi,  Bob!"));      // at most one space
  EXPECT_TRUE(prefix_ok(g, "hel"));
  EXPECT_FALSE(prefix_ok(g, "hex"));
}

TEST(Gbnf, BoundedRepetitionAndEscapes) {
  Grammar g = must_parse(R"(root ::= "a"{2,3} [\x30-\x39]{1} "\n" [^\]\\]? "\u00e9"{0,} "x"{2,})");
  EXPECT_TRUE(grammar_accepts(g, "aa0\nxx"));
  EXPECT_TRUE(grammar_accepts(g, "aaa9\n!\xC3\xA9\xC3\xA9xxx"));
  EXPECT_FALSE(grammar_accepts(g, "a0\nxx"));      // {2,3}: too few
  EXPECT_FALSE(grammar_accepts(g, "aaaa0\nxx"));   // too many
  EXPECT_FALSE(grammar_accepts(g, "aa0\n]xx"));    // ] excluded by the negated class
  EXPECT_FALSE(grammar_accepts(g, "aa0\nx"));      // {2,}: at least two
  Grammar any = must_parse("root ::= . .");
  EXPECT_TRUE(grammar_accepts(any, "\xF0\x9F\x98\x80z"));  // U+1F600 then z
  EXPECT_FALSE(grammar_accepts(any, "abc"));
}

TEST(Gbnf, RecursionNestsBalancedBrackets) {
  Grammar g = must_parse("root ::= item*\nitem ::= \"(\" root \")\" | \"[\" root \"]\"");
  EXPECT_TRUE(grammar_accepts(g, ""));
  EXPECT_TRUE(grammar_accepts(g, "([()[]])()"));
  EXPECT_FALSE(grammar_accepts(g, "([)]"));
  EXPECT_FALSE(grammar_accepts(g, "(("));
  EXPECT_TRUE(prefix_ok(g, "(((((["));
}

TEST(Gbnf, PartialUtf8IsAPrefixOnlyWhenSomeCharacterCanFollow) {
  Grammar g = must_parse("root ::= [\\u00e0-\\u00ff] | \"\\u4e2d\"");
  ParseState s0 = initial_state(g);
  EXPECT_FALSE(advance_byte(g, s0, 0xC3).dead());  // C3 xx covers U+00C0..U+00FF: overlaps
  EXPECT_TRUE(advance_byte(g, s0, 0xC2).dead());   // U+0080..U+00BF: none allowed
  ParseState e4 = advance_byte(g, s0, 0xE4);
  EXPECT_FALSE(e4.dead());
  EXPECT_FALSE(e4.can_end());
  EXPECT_FALSE(advance_byte(g, e4, 0xB8).dead());  // E4 B8 covers U+4E00..U+4E3F
  EXPECT_TRUE(advance_byte(g, e4, 0xB9).dead());
  EXPECT_TRUE(grammar_accepts(g, "\xE4\xB8\xAD"));
  EXPECT_TRUE(grammar_accepts(g, "\xC3\xA9"));
  EXPECT_FALSE(grammar_accepts(g, "\xC3\x80"));  // U+00C0 is below the range
  EXPECT_TRUE(advance_byte(g, s0, 0xFF).dead());  // never UTF-8
  // Overlong encodings and surrogates are not UTF-8, even when the class holds the code point.
  Grammar any = must_parse("root ::= .*");
  EXPECT_TRUE(prefix_ok(any, "\"\xC3\xA9\xF0\x9F\x98\x80"));
  EXPECT_FALSE(prefix_ok(any, "\xC0\xA2"));              // '"' in 2 bytes
  EXPECT_FALSE(prefix_ok(any, "\xE0\x80"));              // any 3-byte form below U+0800
  EXPECT_FALSE(prefix_ok(any, "\xF0\x80\x80\xA2"));      // '"' in 4 bytes
  EXPECT_FALSE(prefix_ok(any, "\xED\xA0"));              // U+D800.. surrogates
  EXPECT_FALSE(prefix_ok(any, "\xF4\x90"));              // beyond U+10FFFF
}

// A small vocabulary with tokens that span several symbols and split characters.
std::shared_ptr<const GrammarVocab> small_vocab(std::vector<std::string>& pieces) {
  pieces = {"a", "b", "ab", "ba", "abab", "{", "}", "\"", "\xC3", "\xA9", "\xC3\xA9", "\xA9\"", "", "x", "aa", "<eos>"};
  std::vector<bool> eog(pieces.size(), false);
  eog.back() = true;
  return std::make_shared<const GrammarVocab>(pieces, eog);
}

// Twin of the mask: each token's bytes through the plain matcher.
std::vector<int32_t> twin_allowed(const Grammar& g, const ParseState& st, const std::vector<std::string>& pieces,
                                  int32_t eos) {
  std::vector<int32_t> out;
  for (int32_t t = 0; t < static_cast<int32_t>(pieces.size()); ++t) {
    if (t == eos) {
      if (st.can_end()) out.push_back(t);
      continue;
    }
    if (pieces[t].empty()) continue;
    if (!advance_bytes(g, st, pieces[t]).dead()) out.push_back(t);
  }
  return out;
}

TEST(GrammarConstraint, MaskMatchesPerTokenTwinAlongAPath) {
  std::vector<std::string> pieces;
  auto vocab = small_vocab(pieces);
  const std::string text = "root ::= (\"a\" \"b\"?)+ \"{\" \"\\\"\" [\\u00e9]* \"\\\"\" \"}\"";
  auto c = GrammarConstraint::create(text, vocab, "test");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  auto& gc = **c;
  Grammar g = must_parse(text);
  ParseState st = initial_state(g);
  const int32_t eos = static_cast<int32_t>(pieces.size()) - 1;
  // The path "abab" "a" "{" "\"" "\xC3" "\xA9" "\xC3\xA9" "\"" "}" then EOS.
  for (const char* piece : {"abab", "a", "{", "\"", "\xC3", "\xA9", "\xC3\xA9", "\"", "}"}) {
    EXPECT_EQ(gc.allowed_tokens(), twin_allowed(g, st, pieces, eos)) << "before '" << piece << "'";
    int32_t id = -1;
    for (size_t i = 0; i < pieces.size(); ++i)
      if (pieces[i] == piece) id = static_cast<int32_t>(i);
    ASSERT_TRUE(gc.accept(id)) << piece;
    st = advance_bytes(g, st, piece);
  }
  EXPECT_EQ(gc.allowed_tokens(), std::vector<int32_t>{eos});  // complete: only the end
  EXPECT_TRUE(gc.can_end());
  EXPECT_TRUE(gc.accept(eos));
  EXPECT_FALSE(gc.accept(0));  // nothing after the end
}

TEST(GrammarConstraint, SamplerNeverPicksABannedTokenAndEndsOnlyWhenComplete) {
  std::vector<std::string> pieces;
  auto vocab = small_vocab(pieces);
  auto c = GrammarConstraint::create("root ::= \"ab\" \"a\"{0,3}", vocab, "test");
  ASSERT_TRUE(c.is_ok());
  const int32_t eos = static_cast<int32_t>(pieces.size()) - 1;
  for (uint32_t seed = 0; seed < 50; ++seed) {
    tandem::SamplerOptions so;
    so.temperature = 1.0f;
    so.top_k = 0;
    so.top_p = 1.0f;
    so.min_p = 0.0f;
    so.seed = seed;
    so.constraint = *c;
    tandem::Sampler s(so);
    std::vector<float> logits(pieces.size(), 0.0f);
    logits[static_cast<size_t>(eos)] = 2.0f;
    std::string out;
    for (int step = 0; step < 10; ++step) {
      const int32_t t = s.sample(logits.data(), static_cast<int>(logits.size()));
      ASSERT_GE(t, 0);
      if (t == eos) {
        ASSERT_TRUE(s.constraint()->can_end());
        break;
      }
      ASSERT_TRUE(s.accept(t));
      out += pieces[t];
    }
    EXPECT_TRUE(out == "ab" || out == "aba" || out == "abaa" || out == "abaaa") << out;
  }
}

TEST(GrammarConstraint, CopiedSamplerKeepsItsOwnState) {
  std::vector<std::string> pieces;
  auto vocab = small_vocab(pieces);
  auto c = GrammarConstraint::create("root ::= \"ab\"", vocab, "test");
  ASSERT_TRUE(c.is_ok());
  tandem::SamplerOptions so;
  so.temperature = 0;
  so.constraint = *c;
  tandem::Sampler a(so);
  ASSERT_TRUE(a.accept(0));  // "a"
  tandem::Sampler b = a;     // clone after "a": only "b" may follow
  std::vector<float> logits(pieces.size(), 0.0f);
  EXPECT_EQ(b.sample(logits.data(), static_cast<int>(logits.size())), 1);
  tandem::Sampler fresh(so);  // unaffected by a's accept
  logits[2] = 5.0f;           // "ab"
  EXPECT_EQ(fresh.sample(logits.data(), static_cast<int>(logits.size())), 2);
  a.reset();
  EXPECT_EQ(a.sample(logits.data(), static_cast<int>(logits.size())), 2);
}

}  // namespace
