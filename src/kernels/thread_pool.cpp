#include "core/env.h"
#include "kernels/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <limits>

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

// Back-off schedule of an idle worker: spin (checking the clock every
// kSpinCheck pauses) for kSpinNs, then yield kYieldIters times, then sleep.
// The spin is timed, not counted: a pause lasts from a few to ~60 cycles
// depending on the CPU, and a worker that starts yielding or sleeping
// between the matmuls of a decode step (gaps of a few to tens of
// microseconds) wakes late for the next one.
constexpr int64_t kSpinNs = 100'000;
constexpr int kSpinCheck = 64;
constexpr int kYieldIters = 64;
// The calling thread waiting for the workers at the end of a job: spin, then
// yield (it never sleeps; jobs are short).
constexpr int kWaitSpinIters = 4096;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t pack_range(int64_t next, int64_t end) {
  return (static_cast<uint64_t>(end) << 32) | static_cast<uint64_t>(next);
}
int64_t range_next(uint64_t r) { return static_cast<int64_t>(r & 0xffffffffu); }
int64_t range_end(uint64_t r) { return static_cast<int64_t>(r >> 32); }
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)), slots_(static_cast<size_t>(n_threads_)) {
  // TANDEM_POOL_BALANCED=0: balanced jobs run on static ranges (A/B runs)
  balanced_ = env_switch_on("TANDEM_POOL_BALANCED");
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
  if (job_grain_ > 0) return run_balanced(index);
  const int64_t b = job_n_ * index / n_threads_;
  const int64_t e = job_n_ * (index + 1) / n_threads_;
  if (b < e) job_thunk_(job_ctx_, b, e, index);
}

// Takes the next chunk of this thread's own range.
bool ThreadPool::claim_own(int index, int64_t* b, int64_t* e) {
  std::atomic<uint64_t>& slot = slots_[static_cast<size_t>(index)].range;
  uint64_t r = slot.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t next = range_next(r), end = range_end(r);
    if (next >= end) return false;
    const int64_t take = std::min(job_grain_, end - next);
    if (slot.compare_exchange_weak(r, pack_range(next + take, end), std::memory_order_relaxed)) {
      *b = next;
      *e = next + take;
      return true;
    }
  }
}

// Takes a chunk from the back of the fullest other range.
bool ThreadPool::steal(int index, int64_t* b, int64_t* e) {
  for (;;) {
    int victim = -1;
    int64_t most = 0;
    for (int t = 0; t < n_threads_; ++t) {
      if (t == index) continue;
      const uint64_t r = slots_[static_cast<size_t>(t)].range.load(std::memory_order_relaxed);
      if (range_end(r) - range_next(r) > most) {
        most = range_end(r) - range_next(r);
        victim = t;
      }
    }
    if (victim < 0) return false;
    std::atomic<uint64_t>& slot = slots_[static_cast<size_t>(victim)].range;
    uint64_t r = slot.load(std::memory_order_relaxed);
    const int64_t next = range_next(r), end = range_end(r);
    if (next >= end) continue;
    const int64_t take = std::min(job_grain_, end - next);
    if (slot.compare_exchange_weak(r, pack_range(next, end - take), std::memory_order_relaxed)) {
      *b = end - take;
      *e = end;
      return true;
    }
  }
}

void ThreadPool::run_balanced(int index) {
  int64_t b = 0, e = 0;
  while (claim_own(index, &b, &e)) job_thunk_(job_ctx_, b, e, index);
  while (steal(index, &b, &e)) job_thunk_(job_ctx_, b, e, index);
}

void ThreadPool::run(int64_t n, Thunk thunk, void* ctx, int64_t grain) {
  std::lock_guard<std::mutex> lock(run_mutex_);
  job_n_ = n;
  job_thunk_ = thunk;
  job_ctx_ = ctx;
  job_grain_ = balanced_ ? grain : 0;
  if (job_grain_ > 0) {
    // balanced ranges are packed in 32 bits each
    if (n > std::numeric_limits<uint32_t>::max()) job_grain_ = 0;
    else
      for (int t = 0; t < n_threads_; ++t)
        slots_[static_cast<size_t>(t)].range.store(
            pack_range(n * t / n_threads_, n * (t + 1) / n_threads_), std::memory_order_relaxed);
  }
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
    if (it < kWaitSpinIters) TANDEM_PAUSE();
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
    int it = 0, yields = 0;
    const int64_t spin_until = now_ns() + kSpinNs;
    bool spinning = true;
    while ((g = generation_.load(std::memory_order_acquire)) == seen) {
      if (spinning) {
        TANDEM_PAUSE();
        if (++it % kSpinCheck == 0 && now_ns() > spin_until) spinning = false;
      } else if (yields < kYieldIters) {
        std::this_thread::yield();
        ++yields;
      } else {
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        {
          std::unique_lock<std::mutex> l(sleep_mutex_);
          wake_.wait(l, [&] { return generation_.load(std::memory_order_seq_cst) != seen; });
        }
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      }
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    run_range(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace tandem::kernels
