// ConnectionPool (src/runtime/server/connection_pool.h): a task runs on a
// worker when one is free; a task that finds every worker busy for longer
// than the grace period runs on the overflow lane instead of waiting (the
// HTTP layer answers it 503 at once); the lane grows on demand up to its cap;
// shutdown runs everything queued. Plain tasks, no sockets.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/server/connection_pool.h"
#include "runtime/server/scheduler.h"

namespace tandem::server {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// A gate tasks block on until open() (bounded, so a failing test never hangs).
class Gate {
 public:
  void wait() {
    std::unique_lock<std::mutex> lk(m_);
    cv_.wait_for(lk, 20s, [&] { return open_; });
  }
  void open() {
    {
      std::lock_guard<std::mutex> lk(m_);
      open_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Polls `pred` for up to 10 s.
template <class F>
bool eventually(F pred) {
  const auto end = Clock::now() + 10s;
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return pred();
}

TEST(ConnectionPool, FreeWorkerRunsTheTaskOffTheLane) {
  ConnectionPool pool({/*workers=*/2, /*lane_threads=*/2, 50ms, 1024});
  std::atomic<int> on_lane{-1};
  pool.enqueue([&] { on_lane = ConnectionPool::in_overflow_lane() ? 1 : 0; });
  ASSERT_TRUE(eventually([&] { return on_lane.load() >= 0; }));
  EXPECT_EQ(on_lane.load(), 0);
  EXPECT_FALSE(ConnectionPool::in_overflow_lane());  // (this thread is no lane thread)
}

TEST(ConnectionPool, BusyWorkersSendLaterTasksToTheLaneAfterTheGrace) {
  Metrics metrics;
  Gate hold;  // (declared before the pool: outlives its threads)
  ConnectionPool pool({/*workers=*/2, /*lane_threads=*/4, 100ms, 1024}, &metrics);
  EXPECT_EQ(metrics.http_workers.load(), 2);
  std::atomic<int> started{0};
  for (int i = 0; i < 2; ++i)
    pool.enqueue([&] {
      ++started;
      hold.wait();
    });
  ASSERT_TRUE(eventually([&] { return started.load() == 2; }));
  EXPECT_EQ(metrics.http_busy.load(), 2);
  // Both workers are held: three more tasks must run on the lane, after the
  // grace period but long before the workers free up.
  std::atomic<int> lane_runs{0}, worker_runs{0};
  std::mutex mu;
  std::vector<double> waited;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = Clock::now();
    pool.enqueue([&, t0] {
      std::lock_guard<std::mutex> lk(mu);
      waited.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      (ConnectionPool::in_overflow_lane() ? lane_runs : worker_runs)++;
    });
  }
  ASSERT_TRUE(eventually([&] { return lane_runs.load() + worker_runs.load() == 3; }));
  EXPECT_EQ(lane_runs.load(), 3);
  EXPECT_EQ(worker_runs.load(), 0);
  {
    std::lock_guard<std::mutex> lk(mu);
    for (double w : waited) EXPECT_GE(w, 0.09) << "a task left the worker queue before its grace period";
  }
  EXPECT_EQ(pool.stats().overflowed, 3u);
  EXPECT_EQ(metrics.http_overflowed.load(), 3u);
  // Once the workers are free, new tasks run on them again.
  hold.open();
  ASSERT_TRUE(eventually([&] { return pool.stats().busy == 0; }));
  std::atomic<int> on_lane{-1};
  pool.enqueue([&] { on_lane = ConnectionPool::in_overflow_lane() ? 1 : 0; });
  ASSERT_TRUE(eventually([&] { return on_lane.load() >= 0; }));
  EXPECT_EQ(on_lane.load(), 0);
}

TEST(ConnectionPool, LaneGrowsOnDemandUpToItsCap) {
  Gate hold_worker, hold_lane;
  ConnectionPool pool({/*workers=*/1, /*lane_threads=*/3, 20ms, 1024});
  std::atomic<int> worker_started{0}, lane_running{0}, lane_done{0};
  pool.enqueue([&] {
    ++worker_started;
    hold_worker.wait();
  });
  ASSERT_TRUE(eventually([&] { return worker_started.load() == 1; }));
  // Five slow lane tasks: at most three (the cap) run at once; the others
  // wait for a lane thread, and all of them finish once released.
  std::atomic<int> max_running{0};
  for (int i = 0; i < 5; ++i)
    pool.enqueue([&] {
      const int now = ++lane_running;
      int prev = max_running.load();
      while (now > prev && !max_running.compare_exchange_weak(prev, now)) {
      }
      hold_lane.wait();
      --lane_running;
      ++lane_done;
    });
  ASSERT_TRUE(eventually([&] { return lane_running.load() == 3; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(lane_running.load(), 3);
  EXPECT_EQ(pool.stats().lane_threads, 3);
  hold_lane.open();
  ASSERT_TRUE(eventually([&] { return lane_done.load() == 5; }));
  EXPECT_EQ(max_running.load(), 3);
  hold_worker.open();
}

TEST(ConnectionPool, ShutdownRunsEverythingQueued) {
  std::atomic<int> ran{0};
  {
    ConnectionPool pool({/*workers=*/1, /*lane_threads=*/1, 10s, 1024});
    for (int i = 0; i < 20; ++i)
      pool.enqueue([&] {
        std::this_thread::sleep_for(1ms);
        ++ran;
      });
    pool.shutdown();
    EXPECT_EQ(ran.load(), 20);
    pool.shutdown();  // idempotent
  }
  EXPECT_EQ(ran.load(), 20);
}

TEST(ConnectionPool, WaitingQueueBeyondItsBoundGoesToTheLaneAtOnce) {
  Gate hold;
  ConnectionPool pool({/*workers=*/1, /*lane_threads=*/2, 10s, /*max_waiting=*/1});
  std::atomic<int> started{0}, lane_runs{0};
  pool.enqueue([&] {
    ++started;
    hold.wait();
  });
  ASSERT_TRUE(eventually([&] { return started.load() == 1; }));
  pool.enqueue([&] { ++started; });  // waits for the worker (grace 10 s)
  const auto t0 = Clock::now();
  pool.enqueue([&] { lane_runs += ConnectionPool::in_overflow_lane() ? 1 : 0; });  // past the bound
  ASSERT_TRUE(eventually([&] { return lane_runs.load() == 1; }));
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 5.0);
  hold.open();
  ASSERT_TRUE(eventually([&] { return started.load() == 2; }));
}

}  // namespace
}  // namespace tandem::server
