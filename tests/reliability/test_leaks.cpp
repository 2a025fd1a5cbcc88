// Leak check of full CLI runs (issue 11). In the ASan build (TANDEM_REL_ASAN)
// LeakSanitizer runs at exit of the child: `tandem run` on the bundled model,
// and `tandem serve` started, asked one completion (plain and streaming) and
// stopped with SIGTERM. A leak makes LSan print its report and exit non-zero.
// In other builds the same `tandem run` goes through valgrind memcheck
// (--error-exitcode; definite and indirect leaks count) when it is installed.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <string>
#include <vector>

#include "../server/server_test_util.h"
#include "proc.h"
#include "serve_child.h"

namespace {

namespace fs = std::filesystem;
using tandem::reltest::ProcResult;
using tandem::reltest::kExe;
const std::string kModel = std::string(TANDEM_SOURCE_DIR) + "/models/tiny-hybrid-stories.gguf";

#ifdef TANDEM_REL_ASAN
const std::vector<std::string> kLsanEnv = {"ASAN_OPTIONS=detect_leaks=1:exitcode=23"};

TEST(LeakCheck, RunHasNoLeaks) {
  ProcResult r = tandem::reltest::run_process(
      {kExe, "run", "-m", kModel, "-p", "Once upon a time", "-n", "24", "--temp", "0.8", "--seed", "7", "-t", "2"}, "",
      120, kLsanEnv);
  ASSERT_TRUE(r.exited) << tandem::reltest::describe(r);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("LeakSanitizer"), std::string::npos) << r.err;
  EXPECT_FALSE(r.out.empty());
}

TEST(LeakCheck, ParallelRunHasNoLeaks) {
  ProcResult r = tandem::reltest::run_process(
      {kExe, "run", "-m", kModel, "-p", "Once", "-n", "12", "--parallel", "3", "--seed", "1", "-t", "2"}, "", 120,
      kLsanEnv);
  ASSERT_TRUE(r.exited) << tandem::reltest::describe(r);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("LeakSanitizer"), std::string::npos) << r.err;
}

TEST(LeakCheck, ServeStartRequestSigtermHasNoLeaks) {
  tandem::reltest::ServeChild s(kExe, {"-m", kModel, "-t", "2", "--parallel", "2"}, 0, kLsanEnv, 120);
  ASSERT_TRUE(s.ready()) << s.stderr_text();
  auto r = tandem::test::post_json(s.port(), "/v1/completions", tandem::test::json{{"prompt", "Once upon"}, {"max_tokens", 8}});
  EXPECT_EQ(r.status, 200) << r.raw;
  auto sse = tandem::test::post_sse(s.port(), "/v1/chat/completions",
                                    {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 8}, {"stream", true}});
  EXPECT_EQ(sse.status, 200);
  // A client that goes away mid-stream must not leak its sequence either.
  tandem::test::post_sse(s.port(), "/v1/completions", {{"prompt", "Once"}, {"max_tokens", 64}, {"stream", true}}, 2);
  const int st = s.stop(SIGTERM, 60);
  ASSERT_NE(st, -1) << "the server did not stop on SIGTERM";
  EXPECT_TRUE(WIFEXITED(st)) << "signal " << WTERMSIG(st) << ": " << s.stderr_text();
  EXPECT_EQ(WEXITSTATUS(st), 0) << s.stderr_text();
  EXPECT_EQ(s.stderr_text().find("LeakSanitizer"), std::string::npos) << s.stderr_text();
}
#else
TEST(LeakCheck, RunUnderValgrindHasNoLeaks) {
  const fs::path vg = "/usr/bin/valgrind";
  ASSERT_TRUE(fs::exists(vg)) << "valgrind is not installed (apt-get install valgrind)";
  ProcResult r = tandem::reltest::run_process(
      {vg.string(), "--quiet", "--leak-check=full", "--show-leak-kinds=definite,indirect",
       "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99", kExe, "run", "-m", kModel, "-p",
       "Once upon a time", "-n", "8", "--temp", "0.8", "--seed", "7", "-t", "1"},
      "", 240);
  ASSERT_TRUE(r.exited) << tandem::reltest::describe(r);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
}
#endif

}  // namespace
