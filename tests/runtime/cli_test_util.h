#pragma once
// Running the `tandem` executable from CLI tests: stdout, stderr and exit code,
// optionally feeding a string on stdin; the check of a refused command line.
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

namespace tandem::clitest {

namespace fs = std::filesystem;

// The shared fixtures folder.
inline const fs::path kFix = TANDEM_FIXTURES;

inline std::string threads() {
  const char* e = std::getenv("TANDEM_TEST_THREADS");
  return e ? e : "2";
}

struct Out {
  int code = -1;
  std::string out, err;
};

// p in single quotes for the shell. Built piecewise: g++ 12 warns (-Wrestrict,
// a false positive) on "'" + std::string once inlined.
inline std::string q(const fs::path& p) {
  std::string s(1, '\'');
  s += p.string();
  s += '\'';
  return s;
}

// Runs `<exe> ARGS` (shell syntax), stdin from `input` when given.
inline Out run_exe(const std::string& exe, const std::string& args, const std::string* input = nullptr) {
  static int counter = 0;
  const std::string tag = std::to_string(::getpid()) + "_" + std::to_string(counter++);
  const fs::path err = fs::temp_directory_path() / ("tandem_clitool_err_" + tag);
  const fs::path in = fs::temp_directory_path() / ("tandem_clitool_in_" + tag);
  std::string cmd = "'" + exe + "' " + args + " 2>'" + err.string() + "'";
  if (input) {
    std::ofstream(in, std::ios::binary) << *input;
    cmd += " <'" + in.string() + "'";
  } else {
    cmd += " </dev/null";
  }
  Out o;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return o;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) o.out.append(buf.data(), n);
  const int st = ::pclose(p);
  o.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream ein(err, std::ios::binary);
  o.err.assign(std::istreambuf_iterator<char>(ein), {});
  std::error_code ec;
  fs::remove(err, ec);
  fs::remove(in, ec);
  return o;
}

#ifdef TANDEM_EXE
// `tandem ARGS` with the executable the test is built against (TANDEM_EXE).
inline Out tandem_cli(const std::string& args, const std::string* input = nullptr) {
  return run_exe(TANDEM_EXE, args, input);
}
#endif

// A refused command: non-zero exit, nothing on stdout, exactly one line on
// stderr that says "error". `what` names the case in failure messages.
inline void expect_one_error_line(const Out& o, const std::string& what) {
  EXPECT_NE(o.code, 0) << what;
  EXPECT_TRUE(o.out.empty()) << what << ": " << o.out;
  ASSERT_FALSE(o.err.empty()) << what;
  EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << what << ": " << o.err;  // exactly one line
  EXPECT_NE(o.err.find("error"), std::string::npos) << what << ": " << o.err;
}

}  // namespace tandem::clitest
