#pragma once
// `tandem serve` as a child process for the reliability tests. Unlike
// tests/server/server_process.h it keeps the pid (VmRSS, kill -9), captures
// stderr into a file (to grep: no API key in the log, no sanitizer report)
// and reports how the process ended.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

namespace tandem::reltest {

class ServeChild {
 public:
  // Runs `<exe> serve --host 127.0.0.1 --port <port> args...` (port 0: a free
  // one, read back from the "listening on" line). env: extra "K=V" entries.
  ServeChild(const std::string& exe, std::vector<std::string> args, int port = 0,
             const std::vector<std::string>& env = {}, double ready_timeout_s = 60) {
    static int counter = 0;
    err_path_ = "/tmp/tandem_rel_serve_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".err";
    std::vector<std::string> full = {exe, "serve", "--host", "127.0.0.1", "--port", std::to_string(port)};
    full.insert(full.end(), args.begin(), args.end());
    std::vector<std::string> env_all = env;
    for (char** e = environ; *e; ++e) env_all.emplace_back(*e);
    std::vector<char*> argv, envp;
    for (auto& a : full) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env_all) envp.push_back(e.data());
    envp.push_back(nullptr);
    int fds[2];
    if (pipe(fds) != 0) return;
    const int errfd = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      dup2(errfd, STDERR_FILENO);
      close(fds[0]);
      close(fds[1]);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(errfd);
    close(fds[1]);
    out_fd_ = fds[0];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(ready_timeout_s);
    std::string line;
    while (std::chrono::steady_clock::now() < deadline && line.find('\n') == std::string::npos) {
      pollfd p{out_fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[256];
      const ssize_t n = read(out_fd_, buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
    }
    const std::string prefix = "listening on http://127.0.0.1:";
    const size_t at = line.find(prefix);
    if (at == std::string::npos) return;
    port_ = std::atoi(line.c_str() + at + prefix.size());
    httplib::Client cli("127.0.0.1", port_);
    cli.set_connection_timeout(1, 0);
    while (std::chrono::steady_clock::now() < deadline && alive()) {
      auto r = cli.Get("/health");
      if (r && r->status == 200) {
        ready_ = true;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~ServeChild() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      int st;
      waitpid(pid_, &st, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
    std::remove(err_path_.c_str());
  }
  ServeChild(const ServeChild&) = delete;
  ServeChild& operator=(const ServeChild&) = delete;

  bool ready() const { return ready_; }
  int port() const { return port_; }
  int pid() const { return pid_; }
  bool alive() {
    if (pid_ <= 0 || reaped_) return false;
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == 0) return true;
    reaped_ = true;
    status_ = st;
    return false;
  }
  std::string stderr_text() const {
    std::ifstream in(err_path_, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  // Resident memory of the server in KiB (VmRSS), -1 when unknown.
  long rss_kb() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string key;
    while (in >> key) {
      if (key == "VmRSS:") {
        long v = -1;
        in >> v;
        return v;
      }
      in.ignore(1 << 16, '\n');
    }
    return -1;
  }
  // Sends `sig` and waits up to timeout_s for the exit; the wait status
  // (-1 when it had to be killed).
  int stop(int sig = SIGTERM, double timeout_s = 30) {
    if (pid_ <= 0) return -1;
    if (!reaped_) {
      kill(pid_, sig);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
      while (alive() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (!reaped_) {
        kill(pid_, SIGKILL);
        int st;
        waitpid(pid_, &st, 0);
        reaped_ = true;
        return -1;
      }
    }
    return status_;
  }

 private:
  int pid_ = -1, port_ = -1, out_fd_ = -1;
  bool ready_ = false, reaped_ = false;
  int status_ = 0;
  std::string err_path_;
};

}  // namespace tandem::reltest
