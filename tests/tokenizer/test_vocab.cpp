// Every reference test vector (.inp/.out made by each model's original
// tokenizer) must be reproduced exactly, and the tok512 vocabulary inside the
// model fixtures must give the token ids of the golden manifests.
#include <nlohmann/json.hpp>

#include "vocab_fixture.h"

namespace tandem::testing {
namespace {

std::string show(const std::vector<int32_t>& v) {
  std::string s;
  for (int32_t x : v) {
    s += ' ';
    s += std::to_string(x);
  }
  return s;
}

class VocabVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabVectors, MatchReference) {
  const std::string base = fixture("vocab/ggml-vocab-" + GetParam() + ".gguf");
  LoadedVocab v = load_vocab(base);
  ASSERT_TRUE(v.tok);
  auto texts = read_inp(base + ".inp");
  auto ids = read_out(base + ".out");
  ASSERT_FALSE(texts.empty());
  ASSERT_EQ(texts.size(), ids.size());
  int failures = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> got = v.tok->encode(texts[i], /*add_special=*/false, /*parse_special=*/false);
    if (got != ids[i]) ++failures;
    EXPECT_EQ(got, ids[i]) << "string #" << i << " '" << texts[i] << "'\n  got     " << show(got)
                           << "\n  expected" << show(ids[i]);
  }
  EXPECT_EQ(failures, 0);
}

INSTANTIATE_TEST_SUITE_P(AllPairs, VocabVectors,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "dbrx", "mpt", "falcon",
                                           "refact", "starcoder", "deepseek-llm", "deepseek-coder"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

// The llama2.c tok512 vocabulary stored in the model fixtures: the golden
// manifests list the reference tokenizer's ids (with BOS) for each prompt.
TEST(Tok512, GoldenPromptIds) {
  const char* models[] = {"tiny-llama", "tiny-mamba", "tiny-mamba2", "tiny-granitehybrid",
                          "tiny-jamba", "tiny-falcon-h1", "tiny-nemotron-h", "stories260K",
                          "tiny-hybrid-stories"};
  int checked = 0;
  for (const char* m : models) {
    LoadedVocab v = load_vocab(fixture(std::string("models/") + m + ".gguf"));
    ASSERT_TRUE(v.tok) << m;
    auto manifest = nlohmann::json::parse(read_all(fixture(std::string("golden/") + m + ".json")));
    ASSERT_TRUE(manifest.contains("prompts")) << m;
    for (const auto& p : manifest["prompts"]) {
      std::string text = p["text"].get<std::string>();
      std::vector<int32_t> want = p["tokens"].get<std::vector<int32_t>>();
      EXPECT_EQ(v.tok->encode(text, true, false), want) << m << ": '" << text << "'";
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace tandem::testing
