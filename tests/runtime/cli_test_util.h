#pragma once
// Running the `tandem` executable from CLI tests: stdout, stderr and exit code,
// optionally feeding a string on stdin.
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

inline std::string threads() {
  const char* e = std::getenv("TANDEM_TEST_THREADS");
  return e ? e : "2";
}

struct Out {
  int code = -1;
  std::string out, err;
};

inline std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

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

}  // namespace tandem::clitest
