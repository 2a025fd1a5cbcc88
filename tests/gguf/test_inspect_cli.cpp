// `tandem inspect` as a user runs it: the built binary, its exit code, its
// stdout (text and --json, parsed with nlohmann) and its one-line errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "../runtime/cli_test_util.h"

namespace {

namespace fs = std::filesystem;
const std::string kFixtures = TANDEM_FIXTURES;

using CliRun = tandem::clitest::Out;

CliRun run_inspect(const std::string& args) { return tandem::clitest::run_exe(TANDEM_EXE, "inspect " + args); }

TEST(InspectCli, TextListsMetadataTensorsAndCounts) {
  CliRun r = run_inspect(kFixtures + "/models/tiny-granitehybrid.gguf");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_NE(r.out.find("general.architecture"), std::string::npos);
  EXPECT_NE(r.out.find("\"granitehybrid\""), std::string::npos);
  EXPECT_NE(r.out.find("[0, 0, 2, 0, 0, 2]"), std::string::npos);
  // The 512-token list is summarised, not printed whole.
  EXPECT_NE(r.out.find("(512 items)"), std::string::npos);
  EXPECT_LT(r.out.size(), 20000u);
  EXPECT_NE(r.out.find("blk.2.attn_q.weight"), std::string::npos);
  EXPECT_NE(r.out.find("parameters:"), std::string::npos);
  EXPECT_NE(r.out.find(std::to_string(fs::file_size(kFixtures + "/models/tiny-granitehybrid.gguf"))),
            std::string::npos);
}

TEST(InspectCli, JsonIsOneDocumentWithTheFacts) {
  const std::string path = kFixtures + "/models/stories260K.gguf";
  CliRun r = run_inspect("--json " + path);
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);  // throws (fails) if not one valid document
  EXPECT_EQ(j["file_size"].get<uint64_t>(), fs::file_size(path));
  EXPECT_EQ(j["metadata"]["general.architecture"]["value"], "llama");
  EXPECT_EQ(j["metadata"]["llama.block_count"]["value"], 5);  // llama2.c stories260K: 5 layers
  EXPECT_EQ(j["metadata"]["tokenizer.ggml.tokens"]["length"], 512);
  EXPECT_EQ(j["metadata"]["tokenizer.ggml.tokens"]["value"][1], "<s>");
  // Parameter count = sum over tensors of the product of their shapes.
  int64_t params = 0;
  for (const auto& t : j["tensors"]) {
    int64_t n = 1;
    for (const auto& d : t["shape"]) n *= d.get<int64_t>();
    params += n;
  }
  EXPECT_GT(params, 0);
  EXPECT_EQ(j["n_params"].get<int64_t>(), params);
  EXPECT_EQ(j["tensors"][0]["name"], "token_embd.weight");
  EXPECT_EQ(j["tensors"][0]["type"], "f32");
  EXPECT_EQ(j["tensors"][0]["bytes"], 64 * 512 * 4);
}

TEST(InspectCli, JsonOfAVocabularyWithNonUtf8Tokens) {
  // Byte-level vocabularies hold tokens that are not valid UTF-8 on their own.
  CliRun r = run_inspect("--json --full " + kFixtures + "/vocab/ggml-vocab-dbrx.gguf");
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["metadata"]["tokenizer.ggml.tokens"]["value"].size(), 100352u);
  EXPECT_EQ(j["metadata"]["tokenizer.ggml.pre"]["value"], "dbrx");
  EXPECT_EQ(j["n_tensors"], 0);
}

TEST(InspectCli, BadFileGivesOneErrorLineAndExitCode1) {
  CliRun r = run_inspect(kFixtures + "/bad/ggml-vocab-dbrx-duplicate-key.gguf");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.out.empty());
  EXPECT_EQ(r.err.rfind("tandem inspect: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("duplicate metadata key 'general.file_type'"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  CliRun missing = run_inspect("/nonexistent/model.gguf --json");
  EXPECT_EQ(missing.code, 1);
  EXPECT_EQ(missing.err.rfind("tandem inspect: error: /nonexistent/model.gguf", 0), 0u) << missing.err;

  CliRun noarg = run_inspect("");
  EXPECT_EQ(noarg.code, 1);
  EXPECT_EQ(noarg.err.rfind("tandem inspect: error: ", 0), 0u) << noarg.err;
}

}  // namespace
