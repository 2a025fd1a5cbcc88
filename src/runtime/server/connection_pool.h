#pragma once
// The threads that serve HTTP connections of `tandem serve` (cpp-httplib's
// accept loop hands every accepted connection to enqueue(); see
// tools/cmd_serve.cpp). No httplib types here: the pool runs opaque tasks.
//
// Why not httplib's own ThreadPool: its queue is unbounded, so once every
// worker holds a long streaming request, a new connection waits (the client
// sees a hang, then its own time-out) instead of getting an answer. Here a
// connection that finds no free worker within `grace` is moved to the
// OVERFLOW LANE: a few extra threads (spawned on demand, at most
// `lane_threads`) that answer each such connection at once and close it.
// Code running a task asks in_overflow_lane() to know which kind of thread it
// is on; the HTTP layer then answers cheap GETs (/health, /metrics,
// /v1/models) normally and everything else with 503 + Retry-After.
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tandem::server {

struct Metrics;

class ConnectionPool {
 public:
  struct Options {
    int workers = 8;        // connections served at once (a streaming request holds one for its whole length)
    int lane_threads = 16;  // overflow lane: threads at most (the first exists from the start)
    std::chrono::milliseconds grace{200};  // how long a connection may wait for a worker
    size_t max_waiting = 1024;             // waiting connections beyond this go to the lane at once
  };
  // `metrics` (may be null) receives the http_* gauges and counters.
  explicit ConnectionPool(Options o, Metrics* metrics = nullptr);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // Queues one connection's task (never blocks, never drops it).
  void enqueue(std::function<void()> task);
  // Runs every task already queued, then joins all threads. Idempotent.
  void shutdown();

  // True on an overflow-lane thread: the connection being served found no free worker.
  static bool in_overflow_lane();

  struct Stats {
    int busy = 0;              // workers running a task
    int waiting = 0;           // tasks waiting for a worker
    int lane_threads = 0;      // overflow-lane threads started so far
    uint64_t overflowed = 0;   // tasks handed to the overflow lane
  };
  Stats stats() const;
  const Options& options() const { return opts_; }

 private:
  struct Waiting {
    std::function<void()> fn;
    std::chrono::steady_clock::time_point since;
  };
  void worker();
  void lane();
  void publish();  // m_ held: copies the counters to metrics_

  Options opts_;
  Metrics* metrics_ = nullptr;
  mutable std::mutex m_;
  std::condition_variable work_cv_, lane_cv_;
  std::deque<Waiting> waiting_;                 // FIFO for the workers
  std::deque<std::function<void()>> overflow_;  // for the lane
  int busy_ = 0, lane_idle_ = 0;
  uint64_t overflowed_ = 0;
  bool stop_ = false, joined_ = false;
  std::vector<std::thread> workers_, lanes_;
};

}  // namespace tandem::server
