#pragma once
// Starts `tandem serve --port 0 ...` as a child process for a test, reads the
// port from its "listening on http://HOST:PORT" line, waits for /health = 200
// (bounded), and stops it with SIGTERM when destroyed.
#include <string>
#include <vector>

namespace tandem::test {

class ServerProcess {
 public:
  // args: extra arguments after `serve --host 127.0.0.1 --port 0`.
  explicit ServerProcess(std::vector<std::string> args, double ready_timeout_s = 30);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool ok() const { return port_ > 0 && ready_; }
  int port() const { return port_; }
  const std::string& error() const { return error_; }
  // Still running (not crashed)?
  bool alive() const;

 private:
  int pid_ = -1;
  int port_ = -1;
  bool ready_ = false;
  std::string error_;
};

}  // namespace tandem::test
