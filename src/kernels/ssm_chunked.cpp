// Mamba2 scan in the chunked state-space-duality form. Within a chunk of L
// tokens (per sequence s, head h, with cs_t = sum_{u<=t} Δ_u A_h):
//   y_t   = exp(cs_t) C_t·S_0  +  sum_{u<=t} (C_t·B_u) exp(cs_t - cs_u) Δ_u x_u  +  D x_t
//   S_end = exp(cs_L) S_0      +  sum_u exp(cs_L - cs_u) Δ_u x_u ⊗ B_u
// i.e. a masked L x L "attention" inside the chunk plus a recurrence over the
// chunk states. Same result as the sequential scan up to rounding.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/profiler.h"
#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/ssm_internal.h"
#include "kernels/thread_pool.h"

namespace tandem::kernels {
void ssm_scan_mamba2_chunked(const Mamba2ScanArgs& a, int chunk, ThreadPool& pool) {
  TANDEM_PROF_OP(kSsmScan);  // bench --profile (core/profiler.h)
  if (a.n_seqs <= 0 || a.n_seq_tokens <= 0) return;
  const int L = std::clamp(chunk, 1, 256);
  const int64_t n = static_cast<int64_t>(a.n_seqs) * a.n_head;
  const Mamba2ChunkFn fn = mamba2_chunk_head_fn(active_cpu_path());
  pool.parallel_for(n, [&](int64_t i0, int64_t i1, int) {
    thread_local ChunkScratch sc;
    sc.resize(L);
    for (int64_t i = i0; i < i1; ++i) {
      const int s = static_cast<int>(i / a.n_head), h = static_cast<int>(i % a.n_head);
      mamba2_adopt_head(a, s, h);  // out of place: start from the old state
      fn(a, s, h, L, sc);
    }
  });
}

}  // namespace tandem::kernels
