// The `tandem run` / `tandem replay` commands as a user runs them: exact text
// against the reference programs' outputs (the bundled demo model against the
// reference engine, stories260K against the original llama2.c program), exit
// codes and one-line errors for bad arguments.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "tandem/tandem.h"

namespace {

using namespace tandem::clitest;  // Out, tandem_cli, q, threads, expect_one_error_line, fs, kFix

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << p;
  return {std::istreambuf_iterator<char>(in), {}};
}

// The README's first command: the bundled model, found next to the executable.
TEST(CliRun, DefaultModelGreedyMatchesReferenceEngine) {
  const std::string want = read(kFix / "demo" / "tiny-hybrid-stories.greedy120.prompt-Once-upon-a-time.txt");
  Out o = tandem_cli("run -p 'Once upon a time' -n 120 --temp 0 --ctx 256 -t " + threads());
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, want);
  EXPECT_NE(o.err.find("tokens/s"), std::string::npos) << o.err;
}

TEST(CliRun, Stories260KFromBosMatchesLlama2c) {
  const std::string want = read(kFix / "llama2c" / "stories260K.greedy200.txt");
  Out o =
      tandem_cli("run -m " + q(kFix / "models" / "stories260K.gguf") + " -n 200 --temp 0 --llama2c -t " + threads());
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, want);
}

TEST(CliRun, Stories260KPromptMatchesLlama2c) {
  const std::string want = read(kFix / "llama2c" / "stories260K.greedy200.prompt-One-day-Tom.txt");
  const fs::path model = kFix / "models" / "stories260K.gguf";
  // llama2.c's 200 steps count the prompt tokens after BOS too.
  auto m = tandem::Model::load(model.string());
  ASSERT_TRUE(m.ok()) << m.error();
  const int n = 200 - (static_cast<int>((*m)->tokenize("One day, Tom").size()) - 1);
  Out o = tandem_cli("run -m " + q(model) + " -p 'One day, Tom' -n " + std::to_string(n) + " --temp 0 --llama2c -t " +
                 threads());
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, want);
}

// K continuations sharing one processed prompt (seq_cp) = the single greedy run.
TEST(CliRun, ParallelGreedyEqualsSingle) {
  const std::string model = q(kFix / "models" / "stories260K.gguf");
  Out one = tandem_cli("run -m " + model + " -p 'One day' -n 40 --temp 0 --llama2c -t " + threads());
  ASSERT_EQ(one.code, 0) << one.err;
  Out par = tandem_cli("run -m " + model + " -p 'One day' -n 40 --temp 0 --llama2c --parallel 3 -t " + threads());
  ASSERT_EQ(par.code, 0) << par.err;
  std::string want;
  for (int k = 0; k < 3; ++k) want += "[" + std::to_string(k) + "] " + one.out;
  EXPECT_EQ(par.out, want);
}

TEST(CliRun, SameSeedSameText) {
  const std::string args = "run -m " + q(kFix / "models" / "stories260K.gguf") +
                           " -n 60 --temp 1.0 --top-k 0 --top-p 1 --min-p 0 --seed 1234 -t " + threads();
  Out a = tandem_cli(args), b = tandem_cli(args);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  Out c = tandem_cli("run -m " + q(kFix / "models" / "stories260K.gguf") +
                 " -n 60 --temp 1.0 --top-k 0 --top-p 1 --min-p 0 --seed 99 -t " + threads());
  EXPECT_NE(a.out, c.out);
}

// Bad arguments: non-zero exit, one clear line on stderr, nothing on stdout.
TEST(CliRun, BadArgumentsGiveOneErrorLine) {
  for (const std::string& args : std::vector<std::string>{"run --temp abc", "run -n -5", "run --bogus", "run -m /nonexistent/model.gguf -n 1",
        "run -m " + q(kFix / "models" / "stories260K.gguf") + " --parallel 0", "replay",
        "replay /nonexistent.gguf /nonexistent.json"}) {
    expect_one_error_line(tandem_cli(args), args);
  }
}

TEST(CliReplay, JsonReportAndExitCode) {
  const std::string model = q(kFix / "models" / "tiny-llama.gguf");
  const std::string golden = q(kFix / "golden" / "tiny-llama.json");
  Out o = tandem_cli("replay " + model + " " + golden + " --json -t " + threads());
  ASSERT_EQ(o.code, 0) << o.err << o.out;
  auto j = nlohmann::json::parse(o.out);
  EXPECT_TRUE(j.at("pass").get<bool>());
  EXPECT_EQ(j.at("scenarios").size(), 8u);
  EXPECT_LE(j.at("max_nmse").get<double>(), 1e-5);
  // An impossible tolerance must fail with exit code 1.
  Out f = tandem_cli("replay " + model + " " + golden + " --tolerance 1e-30 -t " + threads());
  EXPECT_EQ(f.code, 1);
  EXPECT_NE(f.out.find("FAIL"), std::string::npos);
}

}  // namespace
