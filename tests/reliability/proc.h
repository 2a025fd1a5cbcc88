#pragma once
// Runs a child process for the reliability tests: argv (no shell), optional
// stdin bytes, extra environment, a hard time limit (SIGKILL), stdout and
// stderr captured separately, and the exit status split into "exited with
// code" vs "killed by a signal" (a crash).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace tandem::reltest {

// The built `tandem` executable under test (set by CMake).
inline const std::string kExe = TANDEM_EXE;

struct ProcResult {
  bool exited = false;  // normal exit (code valid)
  int code = -1;
  int signal = 0;       // > 0: killed by this signal (crash or time-out)
  bool timed_out = false;
  std::string out, err;
};

inline std::string describe(const ProcResult& r) {
  std::string s = r.exited ? "exit " + std::to_string(r.code) : "signal " + std::to_string(r.signal);
  if (r.timed_out) s += " (timed out)";
  return s + "; stderr: [" + r.err + "]";
}

// Runs argv[0] with argv; env entries "K=V" are added to the environment.
inline ProcResult run_process(const std::vector<std::string>& argv, const std::string& stdin_data = "",
                              double timeout_s = 60, const std::vector<std::string>& env = {}) {
  ProcResult r;
  int in[2], out[2], err[2];
  if (pipe(in) != 0 || pipe(out) != 0 || pipe(err) != 0) {
    r.err = "pipe failed";
    return r;
  }
  // Everything the child needs is built before fork (no allocation after it).
  // The extra entries come first: getenv() returns the first match.
  std::vector<std::string> env_all = env;
  for (char** e = environ; *e; ++e) env_all.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : env_all) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) close(fd);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  // Feed stdin (small inputs only: written at once, then closed = EOF).
  signal(SIGPIPE, SIG_IGN);
  if (!stdin_data.empty()) {
    ssize_t n = write(in[1], stdin_data.data(), stdin_data.size());
    (void)n;
  }
  close(in[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      r.timed_out = true;
      break;
    }
    if (poll(fds, 2, 100) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  for (auto& p : fds)
    if (p.fd >= 0) close(p.fd);
  int st = 0;
  waitpid(pid, &st, 0);
  if (WIFEXITED(st)) {
    r.exited = true;
    r.code = WEXITSTATUS(st);
  } else if (WIFSIGNALED(st)) {
    r.signal = WTERMSIG(st);
  }
  return r;
}

}  // namespace tandem::reltest
