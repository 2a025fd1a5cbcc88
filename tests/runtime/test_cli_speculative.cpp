// `tandem run --lookup / --draft-model` and `tandem bench --draft-model`
// through the executable: the speculative text equals the plain text byte for
// byte, statistics are reported, a draft model with another vocabulary and
// --parallel are refused with clear errors.
#include <gtest/gtest.h>

#include <string>

#include "cli_test_util.h"

namespace {

using namespace tandem::clitest;  // Out, tandem_cli, q, threads, expect_one_error_line, fs, kFix

std::string model(const std::string& name) { return q(kFix / "models" / (name + ".gguf")); }

TEST(CliSpeculative, RunTextEqualsPlainRun) {
  const std::string base = "run -m " + model("tiny-hybrid-stories") + " -p 'Once upon a time' -n 60 --temp 0 -t " + threads();
  const Out plain = tandem_cli(base);
  ASSERT_EQ(plain.code, 0) << plain.err;
  ASSERT_GT(plain.out.size(), 20u);
  const Out lookup = tandem_cli(base + " --lookup 3 --draft-max 5");
  ASSERT_EQ(lookup.code, 0) << lookup.err;
  EXPECT_EQ(lookup.out, plain.out);
  EXPECT_NE(lookup.err.find("acceptance"), std::string::npos) << lookup.err;
  const Out draft = tandem_cli(base + " --draft-model " + model("stories260K") + " --draft-max 4");
  ASSERT_EQ(draft.code, 0) << draft.err;
  EXPECT_EQ(draft.out, plain.out);
  EXPECT_NE(draft.err.find("speculative:"), std::string::npos) << draft.err;
}

TEST(CliSpeculative, RefusesParallelAndBothDrafters) {
  const std::string base = "run -m " + model("tiny-llama") + " -p 'Once' -n 4 --temp 0 -t 1";
  Out o = tandem_cli(base + " --lookup 2 --parallel 2");
  EXPECT_NE(o.code, 0);
  EXPECT_NE(o.err.find("--parallel"), std::string::npos) << o.err;
  o = tandem_cli(base + " --lookup 2 --draft-model " + model("stories260K"));
  EXPECT_NE(o.code, 0);
  EXPECT_NE(o.err.find("alternatives"), std::string::npos) << o.err;
  o = tandem_cli(base + " --draft-model /nonexistent/draft.gguf");
  EXPECT_NE(o.code, 0);
  EXPECT_NE(o.err.find("draft model"), std::string::npos) << o.err;
}

TEST(CliSpeculative, BenchReportsAcceptanceAndSpeedup) {
  const Out o = tandem_cli("bench -m " + model("tiny-granitehybrid") + " -p 0 -n 24 -r 1 -t 1 --draft-model " +
                       model("tiny-granitehybrid") + " --draft-max 4");
  ASSERT_EQ(o.code, 0) << o.err << o.out;
  EXPECT_NE(o.out.find("tg24 greedy"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("tg24 spec"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("acceptance"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("speed-up"), std::string::npos) << o.out;
}

}  // namespace
