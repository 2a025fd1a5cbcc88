// HTTP connection workers with an overflow lane (see connection_pool.h).
#include "runtime/server/connection_pool.h"

#include <algorithm>

#include "runtime/server/scheduler.h"

namespace tandem::server {

namespace {
thread_local bool tl_overflow_lane = false;
}  // namespace

bool ConnectionPool::in_overflow_lane() { return tl_overflow_lane; }

ConnectionPool::ConnectionPool(Options o, Metrics* metrics) : opts_(o), metrics_(metrics) {
  opts_.workers = std::max(1, opts_.workers);
  opts_.lane_threads = std::max(1, opts_.lane_threads);
  if (metrics_) metrics_->http_workers.store(opts_.workers);
  std::lock_guard<std::mutex> lk(m_);
  for (int i = 0; i < opts_.workers; ++i) workers_.emplace_back([this] { worker(); });
  // One lane thread from the start: it also watches the age of waiting tasks.
  lanes_.emplace_back([this] { lane(); });
}

ConnectionPool::~ConnectionPool() { shutdown(); }

void ConnectionPool::enqueue(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lk(m_);
    if (waiting_.size() >= opts_.max_waiting) {
      overflow_.push_back(std::move(task));
      ++overflowed_;
    } else {
      waiting_.push_back({std::move(task), std::chrono::steady_clock::now()});
    }
    publish();
  }
  work_cv_.notify_one();
  // Lane threads sleep until the oldest waiting task's grace ends: wake them
  // to recompute it (cheap: there are few, and most sleep on an empty queue).
  lane_cv_.notify_all();
}

void ConnectionPool::worker() {
  std::unique_lock<std::mutex> lk(m_);
  for (;;) {
    work_cv_.wait(lk, [&] { return stop_ || !waiting_.empty(); });
    if (waiting_.empty()) return;  // stopping and drained
    std::function<void()> fn = std::move(waiting_.front().fn);
    waiting_.pop_front();
    ++busy_;
    publish();
    lk.unlock();
    fn();
    fn = nullptr;  // release what the task captured before taking the lock
    lk.lock();
    --busy_;
    publish();
  }
}

void ConnectionPool::lane() {
  tl_overflow_lane = true;
  std::unique_lock<std::mutex> lk(m_);
  for (;;) {
    std::function<void()> fn;
    ++lane_idle_;
    for (;;) {
      if (!overflow_.empty()) {
        fn = std::move(overflow_.front());
        overflow_.pop_front();
        break;
      }
      // While stopping, the workers drain what waits; the lane only ends.
      if (stop_) {
        --lane_idle_;
        return;
      }
      if (waiting_.empty()) {
        lane_cv_.wait(lk);
        continue;
      }
      const auto due = waiting_.front().since + opts_.grace;
      if (std::chrono::steady_clock::now() >= due) {
        fn = std::move(waiting_.front().fn);
        waiting_.pop_front();
        ++overflowed_;
        break;
      }
      lane_cv_.wait_until(lk, due);
    }
    --lane_idle_;
    // Keep one lane thread waiting while this one serves (up to the cap), so
    // a slow client in the lane never holds up the next overflowing one.
    if (!stop_ && lane_idle_ == 0 && static_cast<int>(lanes_.size()) < opts_.lane_threads)
      lanes_.emplace_back([this] { lane(); });
    publish();
    lk.unlock();
    fn();
    fn = nullptr;
    lk.lock();
  }
}

void ConnectionPool::publish() {
  if (!metrics_) return;
  metrics_->http_busy.store(busy_);
  metrics_->http_waiting.store(static_cast<int>(waiting_.size() + overflow_.size()));
  metrics_->http_overflowed.store(overflowed_);
}

ConnectionPool::Stats ConnectionPool::stats() const {
  std::lock_guard<std::mutex> lk(m_);
  return {busy_, static_cast<int>(waiting_.size()), static_cast<int>(lanes_.size()), overflowed_};
}

void ConnectionPool::shutdown() {
  {
    std::lock_guard<std::mutex> lk(m_);
    if (joined_) return;
    stop_ = true;  // no lane thread is started after this
  }
  work_cv_.notify_all();
  lane_cv_.notify_all();
  for (auto& t : workers_) t.join();
  for (auto& t : lanes_) t.join();
  std::lock_guard<std::mutex> lk(m_);
  joined_ = true;
}

}  // namespace tandem::server
