// Child-process server for the tests (see server_process.h).
#include "server_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include <httplib.h>

namespace tandem::test {

ServerProcess::ServerProcess(std::vector<std::string> args, double ready_timeout_s) {
  int fds[2];
  if (pipe(fds) != 0) {
    error_ = "pipe failed";
    return;
  }
  std::vector<std::string> full = {TANDEM_EXE, "serve", "--host", "127.0.0.1", "--port", "0"};
  full.insert(full.end(), args.begin(), args.end());
  pid_ = fork();
  if (pid_ == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> argv;
    for (auto& a : full) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(ready_timeout_s);
  std::string line;
  while (std::chrono::steady_clock::now() < deadline && line.find('\n') == std::string::npos) {
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[256];
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  const std::string prefix = "listening on http://127.0.0.1:";
  const size_t at = line.find(prefix);
  if (at == std::string::npos) {
    error_ = "the server did not print its address; got '" + line + "'";
    return;
  }
  port_ = std::atoi(line.c_str() + at + prefix.size());
  httplib::Client cli("127.0.0.1", port_);
  cli.set_connection_timeout(1, 0);
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = cli.Get("/health");
    if (r && r->status == 200) {
      ready_ = true;
      return;
    }
    if (!alive()) {
      error_ = "the server exited before becoming ready";
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  error_ = "the server did not become ready in time";
}

bool ServerProcess::alive() const {
  if (pid_ <= 0) return false;
  int st = 0;
  return waitpid(pid_, &st, WNOHANG) == 0;
}

ServerProcess::~ServerProcess() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) != 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid_, SIGKILL);
  int st = 0;
  waitpid(pid_, &st, 0);
}

}  // namespace tandem::test
