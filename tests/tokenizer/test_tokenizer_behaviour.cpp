// Tokenizer behaviour beyond the reference vectors: round trips, streaming
// detokenization, special-token parsing, BOS/EOS handling, error reporting.
#include <map>

#include "gguf/writer.h"
#include "tokenizer/pretokenizer.h"
#include "vocab_fixture.h"

namespace tandem::testing {
namespace {

const char* kAllVocabs[] = {"llama-spm", "phi-3", "gpt-2", "dbrx", "mpt", "falcon",
                            "refact", "starcoder", "deepseek-llm", "deepseek-coder"};

// Loaded once per test program (the large vocabularies take a while to index).
const LoadedVocab& vocab(const std::string& name) {
  static std::map<std::string, LoadedVocab> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, load_vocab(fixture("vocab/ggml-vocab-" + name + ".gguf"))).first;
  return it->second;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    size_t n = utf8_decode(s, i, &cp);
    if (cp == 0xFFFFFFFFu) return false;
    i += n;
  }
  return true;
}

// The byte-level vocabularies are lossless and the SentencePiece ones fall back
// to bytes, so every test string must come back exactly.
TEST(TokenizerRoundTrip, DecodeEncodeIsIdentity) {
  for (const char* name : kAllVocabs) {
    const LoadedVocab& v = vocab(name);
    ASSERT_TRUE(v.tok) << name;
    auto texts = read_inp(fixture(std::string("vocab/ggml-vocab-") + name + ".gguf.inp"));
    ASSERT_FALSE(texts.empty());
    for (const std::string& s : texts) {
      EXPECT_EQ(v.tok->decode(v.tok->encode(s, false, false)), s) << name << ": '" << s << "'";
      // with BOS/EOS added, decode drops the control tokens and still round-trips
      EXPECT_EQ(v.tok->decode(v.tok->encode(s, true, false)), s) << name << ": '" << s << "'";
    }
  }
}

TEST(TokenizerStreaming, MatchesDecodeAndNeverSplitsCharacters) {
  for (const char* name : {"llama-spm", "dbrx", "gpt-2", "deepseek-llm"}) {
    const LoadedVocab& v = vocab(name);
    ASSERT_TRUE(v.tok);
    auto texts = read_inp(fixture(std::string("vocab/ggml-vocab-") + name + ".gguf.inp"));
    for (const std::string& s : texts) {
      if (!valid_utf8(s)) continue;
      std::vector<int32_t> ids = v.tok->encode(s, true, false);
      StreamingDetokenizer st(*v.tok);
      std::string acc;
      for (int32_t id : ids) {
        std::string chunk = st.push(id);
        EXPECT_TRUE(valid_utf8(chunk)) << name << ": chunk splits a character in '" << s << "'";
        acc += chunk;
      }
      acc += st.flush();
      EXPECT_EQ(acc, v.tok->decode(ids)) << name;
      EXPECT_EQ(acc, s) << name;
    }
  }
}

TEST(TokenizerStreaming, HoldsBackMultiByteCharacterSplitAcrossByteTokens) {
  const LoadedVocab& v = vocab("llama-spm");
  ASSERT_TRUE(v.tok);
  // U+1F999 (llama emoji) = F0 9F A6 99; the SentencePiece vocab has no token for
  // it, so it is spelled with four <0xNN> byte-fallback tokens.
  std::vector<int32_t> ids = v.tok->encode("\xF0\x9F\xA6\x99", false, false);
  std::vector<int32_t> bytes;
  for (int b : {0xF0, 0x9F, 0xA6, 0x99}) bytes.push_back(v.tok->find_token(fmt::format("<0x{:02X}>", b)));
  ASSERT_GE(ids.size(), 4u);
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), ids.end() - 4));
  StreamingDetokenizer st(*v.tok);
  std::string out;
  for (size_t i = 0; i + 1 < ids.size(); ++i) out += st.push(ids[i]);
  EXPECT_EQ(out, "");  // nothing complete yet
  EXPECT_EQ(st.push(ids.back()), "\xF0\x9F\xA6\x99");
  EXPECT_EQ(st.flush(), "");
  // An incomplete character at end of stream is handed out by flush().
  StreamingDetokenizer st2(*v.tok);
  EXPECT_EQ(st2.push(bytes[0]), "");
  EXPECT_EQ(st2.push(bytes[1]), "");
  EXPECT_EQ(st2.flush(), "\xF0\x9F");
}

TEST(TokenizerStreaming, Utf8CompletePrefix) {
  EXPECT_EQ(utf8_complete_prefix("abc"), 3u);
  EXPECT_EQ(utf8_complete_prefix("a\xE2\x96"), 1u);
  EXPECT_EQ(utf8_complete_prefix("a\xE2\x96\x81"), 4u);
  EXPECT_EQ(utf8_complete_prefix("\xF0\x9F\xA6"), 0u);
  EXPECT_EQ(utf8_complete_prefix("\x80\x80"), 2u);  // stray continuation bytes are not held
}

TEST(TokenizerSpecial, ControlTokensOnlyWhenAllowed) {
  const LoadedVocab& v = vocab("dbrx");
  ASSERT_TRUE(v.tok);
  const int32_t im_start = v.tok->find_token("<|im_start|>");
  const int32_t im_end = v.tok->find_token("<|im_end|>");
  ASSERT_NE(im_start, Tokenizer::kNull);
  const std::string text = "<|im_start|>user\nHi<|im_end|>";
  std::vector<int32_t> on = v.tok->encode(text, false, true);
  ASSERT_FALSE(on.empty());
  EXPECT_EQ(on.front(), im_start);
  EXPECT_EQ(on.back(), im_end);
  // The text between the control tokens is tokenized as plain text.
  std::vector<int32_t> mid = v.tok->encode("user\nHi", false, false);
  EXPECT_EQ(std::vector<int32_t>(on.begin() + 1, on.end() - 1), mid);

  std::vector<int32_t> off = v.tok->encode(text, false, false);
  EXPECT_EQ(std::count(off.begin(), off.end(), im_start), 0);
  EXPECT_EQ(std::count(off.begin(), off.end(), im_end), 0);
  EXPECT_EQ(v.tok->decode(off), text);
  // decode renders control tokens only on request
  EXPECT_EQ(v.tok->decode(on), "user\nHi");
  EXPECT_EQ(v.tok->decode(on, /*special=*/true), text);
  // user-defined tokens are matched in any case (as the original tokenizer does)
  const int32_t pad = v.tok->find_token("[PAD100280]");
  ASSERT_NE(pad, Tokenizer::kNull);
  EXPECT_EQ(v.tok->encode("[PAD100280]", false, false), std::vector<int32_t>{pad});
}

TEST(TokenizerSpecial, SpmSpacePrefixAfterSpecialToken) {
  const LoadedVocab& v = vocab("llama-spm");
  ASSERT_TRUE(v.tok);
  // "<s>" parsed as BOS, then the text run gets the SentencePiece space prefix.
  std::vector<int32_t> a = v.tok->encode("<s>Hello", false, true);
  std::vector<int32_t> b = v.tok->encode("Hello", true, false);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.front(), v.tok->bos());
}

TEST(TokenizerSpecial, BosEosFollowTheKeys) {
  const LoadedVocab& spm = vocab("llama-spm");  // add_bos_token = true, add_eos_token = false
  ASSERT_TRUE(spm.tok);
  EXPECT_TRUE(spm.tok->add_bos());
  auto ids = spm.tok->encode("Hello world", true, false);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_NE(ids.back(), 2);
  EXPECT_EQ(spm.tok->encode("", true, false), std::vector<int32_t>{1});
  EXPECT_TRUE(spm.tok->encode("", false, false).empty());

  const LoadedVocab& gpt2 = vocab("gpt-2");  // no add_bos_token key: byte-level BPE default is no BOS
  ASSERT_TRUE(gpt2.tok);
  EXPECT_EQ(gpt2.tok->encode("Hello", true, false), gpt2.tok->encode("Hello", false, false));
}

TEST(TokenizerSpecial, EndOfGeneration) {
  const LoadedVocab& v = vocab("dbrx");
  ASSERT_TRUE(v.tok);
  EXPECT_TRUE(v.tok->is_eog(v.tok->eos()));
  EXPECT_TRUE(v.tok->is_eog(v.tok->find_token("<|im_end|>")));
  EXPECT_FALSE(v.tok->is_eog(v.tok->find_token("<|im_start|>")));
  EXPECT_FALSE(v.tok->is_eog(v.tok->find_token("Hello")));
  const LoadedVocab& phi = vocab("phi-3");
  ASSERT_TRUE(phi.tok);
  EXPECT_EQ(phi.tok->eot(), phi.tok->find_token("<|end|>"));
  EXPECT_TRUE(phi.tok->is_eog(phi.tok->eot()));
}

TEST(TokenizerPieces, PiecesAreBytes) {
  const LoadedVocab& v = vocab("dbrx");
  ASSERT_TRUE(v.tok);
  // GPT-2 alphabet: U+0120 'Ġ' is the space byte.
  int32_t id = v.tok->find_token("\xC4\xA0world");
  ASSERT_NE(id, Tokenizer::kNull);
  EXPECT_EQ(v.tok->token_to_piece(id), " world");
  EXPECT_EQ(v.tok->token_to_piece(-1), "");
  EXPECT_EQ(v.tok->token_to_piece(v.tok->n_vocab()), "");
  const LoadedVocab& s = vocab("llama-spm");
  ASSERT_TRUE(s.tok);
  EXPECT_EQ(s.tok->token_to_piece(s.tok->find_token("<0x0A>")), "\n");
  EXPECT_EQ(s.tok->token_to_piece(s.tok->find_token("\xE2\x96\x81the")), " the");
  EXPECT_EQ(s.tok->token_to_piece(s.tok->bos(), false), "");
  EXPECT_EQ(s.tok->token_to_piece(s.tok->bos(), true), "<s>");
}

// A vocabulary written in memory with the given pre-tokenizer name.
Result<std::unique_ptr<gguf::File>> tiny_bpe(const std::string& pre) {
  gguf::Writer w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", pre);
  std::vector<std::string> toks;
  for (int b = 0; b < 256; ++b) toks.push_back(byte_to_unicode_utf8(static_cast<uint8_t>(b)));
  toks.push_back("ab");
  w.set_string_array("tokenizer.ggml.tokens", toks);
  w.set_string_array("tokenizer.ggml.merges", {"a b"});
  TANDEM_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, w.to_bytes());
  return gguf::File::from_bytes(std::move(bytes), "tiny-bpe.gguf");
}

TEST(TokenizerErrors, UnknownPreTokenizerIsNamed) {
  auto f = tiny_bpe("no-such-pre");
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  auto t = Tokenizer::from_gguf(*f.value());
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("no-such-pre"), std::string::npos) << t.status().message();
  EXPECT_NE(t.status().message().find("tokenizer.ggml.pre"), std::string::npos) << t.status().message();

  auto g = tiny_bpe("gpt-2");
  ASSERT_TRUE(g.is_ok());
  auto ok = Tokenizer::from_gguf(*g.value());
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  // merge "a b" -> token 256; "abc" splits as one word "abc" -> [ab, c]
  EXPECT_EQ(ok.value()->encode("abc", false, false), (std::vector<int32_t>{256, 'c'}));
}

TEST(TokenizerErrors, MissingKeysAreNamed) {
  gguf::Writer w;
  w.set_string("tokenizer.ggml.model", "sentencepiece-unigram");
  w.set_string_array("tokenizer.ggml.tokens", {"a"});
  auto bytes = w.to_bytes();
  ASSERT_TRUE(bytes.is_ok());
  auto f = gguf::File::from_bytes(std::move(bytes).value(), "x.gguf");
  ASSERT_TRUE(f.is_ok());
  auto t = Tokenizer::from_gguf(*f.value());
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("sentencepiece-unigram"), std::string::npos);

  gguf::Writer w2;
  w2.set_string("tokenizer.ggml.model", "llama");
  auto b2 = w2.to_bytes();
  ASSERT_TRUE(b2.is_ok());
  auto f2 = gguf::File::from_bytes(std::move(b2).value(), "y.gguf");
  ASSERT_TRUE(f2.is_ok());
  auto t2 = Tokenizer::from_gguf(*f2.value());
  ASSERT_FALSE(t2.is_ok());
  EXPECT_NE(t2.status().message().find("tokenizer.ggml.tokens"), std::string::npos) << t2.status().message();
}

TEST(PreTokenizer, PiecesTileTheInput) {
  for (const char* pre : {"gpt-2", "dbrx", "qwen2", "falcon", "starcoder", "deepseek-llm", "deepseek-coder", "default"}) {
    auto p = PreTokenizer::create(pre);
    ASSERT_TRUE(p.is_ok()) << pre << ": " << p.status().to_string();
    const std::string text = "Hello,  world!\n\n  123456 don't \xF0\x9F\xA6\x99 \xFF\xFE bad-utf8   ";
    std::vector<std::string_view> pieces;
    p.value()->split(text, pieces);
    std::string joined;
    for (auto s : pieces) {
      EXPECT_FALSE(s.empty());
      joined += s;
    }
    EXPECT_EQ(joined, text) << pre;
  }
  // GPT-2 splits "don't" as "don", "'t" and keeps a leading space on words.
  auto g = PreTokenizer::create("gpt-2");
  ASSERT_TRUE(g.is_ok());
  std::vector<std::string_view> pieces;
  g.value()->split("I don't  know", pieces);
  std::vector<std::string> got(pieces.begin(), pieces.end());
  EXPECT_EQ(got, (std::vector<std::string>{"I", " don", "'t", " ", " know"}));
  // Llama-3 / DBRX: digits in groups of at most three.
  auto d = PreTokenizer::create("dbrx");
  ASSERT_TRUE(d.is_ok());
  pieces.clear();
  d.value()->split("1234567", pieces);
  got.assign(pieces.begin(), pieces.end());
  EXPECT_EQ(got, (std::vector<std::string>{"123", "456", "7"}));
}

}  // namespace
}  // namespace tandem::testing
