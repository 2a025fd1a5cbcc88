// `tandem run --lookup / --draft-model` and `tandem bench --draft-model`
// through the executable: the speculative text equals the plain text byte for
// byte, statistics are reported, a draft model with another vocabulary and
// --parallel are refused with clear errors.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace {

namespace fs = std::filesystem;
const fs::path kFix = TANDEM_FIXTURES;
const std::string kExe = TANDEM_EXE;

std::string threads() {
  const char* e = std::getenv("TANDEM_TEST_THREADS");
  return e ? e : "2";
}

struct Out {
  int code = -1;
  std::string out, err;
};

Out tandem(const std::string& args) {
  const fs::path err = fs::temp_directory_path() / ("tandem_cli_spec_err_" + std::to_string(::getpid()));
  const std::string cmd = "'" + kExe + "' " + args + " 2>'" + err.string() + "'";
  Out o;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return o;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) o.out.append(buf.data(), n);
  const int st = ::pclose(p);
  o.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream in(err, std::ios::binary);
  o.err.assign(std::istreambuf_iterator<char>(in), {});
  fs::remove(err);
  return o;
}

std::string model(const std::string& name) {
  std::string q(1, '\'');  // built piecewise: g++ 12 warns (-Wrestrict) on "'" + std::string
  q += (kFix / "models" / (name + ".gguf")).string();
  q += '\'';
  return q;
}

TEST(CliSpeculative, RunTextEqualsPlainRun) {
  const std::string base = "run -m " + model("tiny-hybrid-stories") + " -p 'Once upon a time' -n 60 --temp 0 -t " + threads();
  const Out plain = tandem(base);
  ASSERT_EQ(plain.code, 0) << plain.err;
  ASSERT_GT(plain.out.size(), 20u);
  const Out lookup = tandem(base + " --lookup 3 --draft-max 5");
  ASSERT_EQ(lookup.code, 0) << lookup.err;
  EXPECT_EQ(lookup.out, plain.out);
  EXPECT_NE(lookup.err.find("acceptance"), std::string::npos) << lookup.err;
  const Out draft = tandem(base + " --draft-model " + model("stories260K") + " --draft-max 4");
  ASSERT_EQ(draft.code, 0) << draft.err;
  EXPECT_EQ(draft.out, plain.out);
  EXPECT_NE(draft.err.find("speculative:"), std::string::npos) << draft.err;
}

TEST(CliSpeculative, RefusesParallelAndBothDrafters) {
  const std::string base = "run -m " + model("tiny-llama") + " -p 'Once' -n 4 --temp 0 -t 1";
  Out o = tandem(base + " --lookup 2 --parallel 2");
  EXPECT_NE(o.code, 0);
  EXPECT_NE(o.err.find("--parallel"), std::string::npos) << o.err;
  o = tandem(base + " --lookup 2 --draft-model " + model("stories260K"));
  EXPECT_NE(o.code, 0);
  EXPECT_NE(o.err.find("alternatives"), std::string::npos) << o.err;
  o = tandem(base + " --draft-model /nonexistent/draft.gguf");
  EXPECT_NE(o.code, 0);
  EXPECT_NE(o.err.find("draft model"), std::string::npos) << o.err;
}

TEST(CliSpeculative, BenchReportsAcceptanceAndSpeedup) {
  const Out o = tandem("bench -m " + model("tiny-granitehybrid") + " -p 0 -n 24 -r 1 -t 1 --draft-model " +
                       model("tiny-granitehybrid") + " --draft-max 4");
  ASSERT_EQ(o.code, 0) << o.err << o.out;
  EXPECT_NE(o.out.find("tg24 greedy"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("tg24 spec"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("acceptance"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("speed-up"), std::string::npos) << o.out;
}

}  // namespace
