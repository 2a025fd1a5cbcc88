// The `tandem run` / `tandem replay` commands as a user runs them: exact text
// against the reference programs' outputs (the bundled demo model against the
// reference engine, stories260K against the original llama2.c program), exit
// codes and one-line errors for bad arguments.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tandem/tandem.h"

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

// Runs `tandem ARGS`, capturing stdout and stderr.
Out tandem(const std::string& args) {
  const fs::path err = fs::temp_directory_path() / ("tandem_cli_err_" + std::to_string(::getpid()));
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

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << p;
  return {std::istreambuf_iterator<char>(in), {}};
}

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

// The README's first command: the bundled model, found next to the executable.
TEST(CliRun, DefaultModelGreedyMatchesReferenceEngine) {
  const std::string want = read(kFix / "demo" / "tiny-hybrid-stories.greedy120.prompt-Once-upon-a-time.txt");
  Out o = tandem("run -p 'Once upon a time' -n 120 --temp 0 --ctx 256 -t " + threads());
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, want);
  EXPECT_NE(o.err.find("tokens/s"), std::string::npos) << o.err;
}

TEST(CliRun, Stories260KFromBosMatchesLlama2c) {
  const std::string want = read(kFix / "llama2c" / "stories260K.greedy200.txt");
  Out o = tandem("run -m " + q(kFix / "models" / "stories260K.gguf") + " -n 200 --temp 0 --llama2c -t " + threads());
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
  Out o = tandem("run -m " + q(model) + " -p 'One day, Tom' -n " + std::to_string(n) + " --temp 0 --llama2c -t " +
                 threads());
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, want);
}

// K continuations sharing one processed prompt (seq_cp) = the single greedy run.
TEST(CliRun, ParallelGreedyEqualsSingle) {
  const std::string model = q(kFix / "models" / "stories260K.gguf");
  Out one = tandem("run -m " + model + " -p 'One day' -n 40 --temp 0 --llama2c -t " + threads());
  ASSERT_EQ(one.code, 0) << one.err;
  Out par = tandem("run -m " + model + " -p 'One day' -n 40 --temp 0 --llama2c --parallel 3 -t " + threads());
  ASSERT_EQ(par.code, 0) << par.err;
  std::string want;
  for (int k = 0; k < 3; ++k) want += "[" + std::to_string(k) + "] " + one.out;
  EXPECT_EQ(par.out, want);
}

TEST(CliRun, SameSeedSameText) {
  const std::string args = "run -m " + q(kFix / "models" / "stories260K.gguf") +
                           " -n 60 --temp 1.0 --top-k 0 --top-p 1 --min-p 0 --seed 1234 -t " + threads();
  Out a = tandem(args), b = tandem(args);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  Out c = tandem("run -m " + q(kFix / "models" / "stories260K.gguf") +
                 " -n 60 --temp 1.0 --top-k 0 --top-p 1 --min-p 0 --seed 99 -t " + threads());
  EXPECT_NE(a.out, c.out);
}

// Bad arguments: non-zero exit, one clear line on stderr, nothing on stdout.
TEST(CliRun, BadArgumentsGiveOneErrorLine) {
  for (const std::string& args : std::vector<std::string>{"run --temp abc", "run -n -5", "run --bogus", "run -m /nonexistent/model.gguf -n 1",
        "run -m " + q(kFix / "models" / "stories260K.gguf") + " --parallel 0", "replay",
        "replay /nonexistent.gguf /nonexistent.json"}) {
    Out o = tandem(args);
    EXPECT_NE(o.code, 0) << args;
    EXPECT_TRUE(o.out.empty()) << args << ": " << o.out;
    ASSERT_FALSE(o.err.empty()) << args;
    EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << args << ": " << o.err;  // exactly one line
    EXPECT_NE(o.err.find("error"), std::string::npos) << args << ": " << o.err;
  }
}

TEST(CliReplay, JsonReportAndExitCode) {
  const std::string model = q(kFix / "models" / "tiny-llama.gguf");
  const std::string golden = q(kFix / "golden" / "tiny-llama.json");
  Out o = tandem("replay " + model + " " + golden + " --json -t " + threads());
  ASSERT_EQ(o.code, 0) << o.err << o.out;
  auto j = nlohmann::json::parse(o.out);
  EXPECT_TRUE(j.at("pass").get<bool>());
  EXPECT_EQ(j.at("scenarios").size(), 8u);
  EXPECT_LE(j.at("max_nmse").get<double>(), 1e-5);
  // An impossible tolerance must fail with exit code 1.
  Out f = tandem("replay " + model + " " + golden + " --tolerance 1e-30 -t " + threads());
  EXPECT_EQ(f.code, 1);
  EXPECT_NE(f.out.find("FAIL"), std::string::npos);
}

}  // namespace
