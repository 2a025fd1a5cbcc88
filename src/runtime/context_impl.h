#pragma once
// tandem::Context internals: Model + HybridMemory + Runner + ThreadPool, the
// logits of the last decode, and per-sequence token histories (what a suffix
// cut of recurrent state needs to replay).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "kernels/thread_pool.h"
#include "memory/hybrid_memory.h"
#include "model/model.h"
#include "runtime/internal.h"

namespace tandem {

// (position, token) pairs of one sequence, sorted by position. Positions are
// contiguous in practice; pairs keep seq_add / seq_div on sub-ranges exact.
using History = std::vector<std::pair<int32_t, int32_t>>;

struct Context::Impl {
  const Model* model = nullptr;
  const model::Model* m = nullptr;
  ContextOptions opts;
  std::unique_ptr<memory::HybridMemory> mem;
  std::unique_ptr<model::Runner> runner;
  std::unique_ptr<kernels::ThreadPool> pool;
  std::string fingerprint;  // model identity for state files

  std::vector<float> logits;     // [n_outputs][n_vocab], batch order
  std::vector<int> output_rows;  // [n_outputs] batch row of each output
  std::vector<History> hist;     // [n_seq_max]
  // Histories of the snapshots this context took (memory may evict them).
  std::map<uint64_t, History> snap_hist;
  // Replay cost of suffix cuts (Context::last_replayed_tokens()).
  int last_replayed = 0;
  int64_t replayed_total = 0;

  std::function<bool()> cancel;
  std::function<void(const DecodeProgress&)> progress;

  // plan -> apply + forward per micro-batch -> commit; rollback on failure.
  // `logits_out` may be null when no row wants output.
  Status run_batch(const memory::Batch& b, float* logits_out, bool report_progress);
  // After a suffix cut that reset recurrent state: re-decode the kept tokens
  // of `s` at positions [from, end) (no outputs).
  Status replay(int s, int32_t from, int32_t end);
  Status check_seq(int s, const char* what) const;
  void prune_snapshot_histories();
};

namespace runtime {
// Erase history entries of h with position in [p0, p1) (p1 < 0: open end).
void history_erase(History& h, int32_t p0, int32_t p1);
}  // namespace runtime

}  // namespace tandem
