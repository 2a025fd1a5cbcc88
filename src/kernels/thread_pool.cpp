#include "kernels/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TANDEM_PAUSE() _mm_pause()
#else
#define TANDEM_PAUSE() ((void)0)
#endif

namespace tandem::kernels {

namespace {
// The pool whose job this thread is running (and its index there).
thread_local const ThreadPool* current_pool_ = nullptr;
thread_local int current_index_ = 0;

// Back-off schedule: ~tens of microseconds of spinning, then yields, then sleep.
constexpr int kSpinIters = 4096;
constexpr int kYieldIters = 64;
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  threads_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  wake_sleepers();
  for (std::thread& t : threads_) t.join();
}

bool ThreadPool::inside(int* index) const {
  if (current_pool_ != this) return false;
  *index = current_index_;
  return true;
}

void ThreadPool::wake_sleepers() {
  // Taking the mutex orders us after any sleeper's predicate check: it is
  // either not yet checking (and will see the new generation) or waiting.
  { std::lock_guard<std::mutex> l(sleep_mutex_); }
  wake_.notify_all();
}

void ThreadPool::run_range(int index) {
  const int64_t b = job_n_ * index / n_threads_;
  const int64_t e = job_n_ * (index + 1) / n_threads_;
  if (b < e) job_thunk_(job_ctx_, b, e, index);
}

void ThreadPool::run(int64_t n, Thunk thunk, void* ctx) {
  std::lock_guard<std::mutex> lock(run_mutex_);
  job_n_ = n;
  job_thunk_ = thunk;
  job_ctx_ = ctx;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_seq_cst);  // publishes the job
  // Dekker pairing with worker(): either it sees the new generation before it
  // sleeps, or we see it counted in sleepers_ and wake it under the mutex.
  if (sleepers_.load(std::memory_order_seq_cst) > 0) wake_sleepers();

  const ThreadPool* saved_pool = current_pool_;
  int saved_index = current_index_;
  current_pool_ = this;
  current_index_ = 0;
  run_range(0);
  current_pool_ = saved_pool;
  current_index_ = saved_index;

  for (int it = 0; pending_.load(std::memory_order_acquire) != 0; ++it) {
    if (it < kSpinIters) TANDEM_PAUSE();
    else std::this_thread::yield();
  }
}

void ThreadPool::worker(int index) {
  current_pool_ = this;
  current_index_ = index;
  uint32_t seen = 0;  // the generation at construction: a job published before this thread ran is not missed
  for (;;) {
    // Wait for a new generation: spin, yield, then sleep on the condition variable.
    uint32_t g;
    int it = 0;
    while ((g = generation_.load(std::memory_order_acquire)) == seen) {
      if (it < kSpinIters) {
        TANDEM_PAUSE();
      } else if (it < kSpinIters + kYieldIters) {
        std::this_thread::yield();
      } else {
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        {
          std::unique_lock<std::mutex> l(sleep_mutex_);
          wake_.wait(l, [&] { return generation_.load(std::memory_order_seq_cst) != seen; });
        }
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      }
      ++it;
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    run_range(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace tandem::kernels
