#pragma once
// A fixed pool of worker threads for data-parallel kernels.
//
// parallel_for(n, fn) splits [0, n) statically into size() contiguous ranges;
// thread t (the calling thread is t = 0) runs fn(begin, end, t) on range t
// (empty ranges are skipped). Workers wait on a generation counter: they spin
// with pause, then yield, then sleep on a condition variable, so decode steps
// wake them in microseconds while an idle pool costs no CPU. (Not
// std::atomic::wait: libstdc++ 12 can miss its notify, which deadlocked -t 2.)
// A parallel_for issued from inside a worker runs inline (no nesting).
//
// parallel_for_balanced(n, grain, fn) starts from the same static ranges but
// hands them out in chunks of `grain`: a thread that finishes its own range
// takes chunks from the back of another's, so a call ends when the work
// does, not when the slower thread does (threads streaming weights from
// DRAM drift apart by ~10 us per call on a shared machine). fn(b, e, t) is
// called once per chunk, t = the thread running it; which thread runs which
// chunk varies between calls, so fn must give the same result for an item
// whichever thread computes it (no per-thread partial sums).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace tandem::kernels {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Balanced jobs on static ranges when false (A/B in one process; default
  // true unless TANDEM_POOL_BALANCED=0). Not to be called during a job.
  void set_balanced(bool on) { balanced_ = on; }

  template <typename F>
  void parallel_for_balanced(int64_t n, int64_t grain, F&& fn) {
    dispatch(n, grain < 1 ? 1 : grain, fn);
  }

  template <typename F>
  void parallel_for(int64_t n, F&& fn) {
    dispatch(n, 0, fn);
  }

 private:
  // Runs fn inline for one thread, one item or a nested call; else as a job
  // (grain as in run()).
  template <typename F>
  void dispatch(int64_t n, int64_t grain, F& fn) {
    if (n <= 0) return;
    int index = 0;
    if (n_threads_ == 1 || n == 1 || inside(&index)) {
      fn(int64_t{0}, n, index);
      return;
    }
    using Fn = std::remove_reference_t<F>;
    run(n, [](void* ctx, int64_t b, int64_t e, int t) { (*static_cast<Fn*>(ctx))(b, e, t); },
        const_cast<void*>(static_cast<const void*>(&fn)), grain);
  }

  using Thunk = void (*)(void*, int64_t, int64_t, int);
  // grain 0: static ranges, one call per thread; > 0: balanced chunks.
  void run(int64_t n, Thunk thunk, void* ctx, int64_t grain = 0);
  // True when called from one of this pool's threads while it runs a job
  // (*index = that thread's index). The thread-local state lives in the .cpp:
  // no thread_local is touched from inline code in other translation units.
  bool inside(int* index) const;
  void worker(int index);
  void run_range(int index);
  void run_balanced(int index);
  bool claim_own(int index, int64_t* b, int64_t* e);
  bool steal(int index, int64_t* b, int64_t* e);
  void wake_sleepers();

  int n_threads_;
  std::vector<std::thread> threads_;
  std::mutex run_mutex_;                 // one parallel_for at a time per pool
  std::atomic<uint32_t> generation_{0};  // bumped to start a job
  std::mutex sleep_mutex_;               // guards the sleep path only
  std::condition_variable wake_;
  std::atomic<int> sleepers_{0};
  std::atomic<int> pending_{0};          // workers still running the current job
  std::atomic<bool> stop_{false};
  // Current job (written before generation_ is bumped).
  int64_t job_n_ = 0;
  Thunk job_thunk_ = nullptr;
  void* job_ctx_ = nullptr;
  int64_t job_grain_ = 0;
  bool balanced_ = true;
  // Balanced jobs: per thread, the unclaimed part of its range packed as
  // (end << 32 | next); the owner takes from next, others from end.
  struct alignas(64) Slot {
    std::atomic<uint64_t> range{0};
  };
  std::vector<Slot> slots_;
};

}  // namespace tandem::kernels
