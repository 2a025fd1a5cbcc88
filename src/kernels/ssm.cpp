// State-space kernels: the Mamba2 selective scan (sequential form; the
// causal conv is in ssm_conv.cpp) and the Mamba1 scan. States are updated
// through the per-sequence pointer arrays, in place or from state_in.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/env.h"
#include "core/profiler.h"
#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/ssm_internal.h"
#include "kernels/thread_pool.h"

namespace tandem::kernels {

namespace scalar {
#define TANDEM_TGT
#include "kernels/ssm_scan_body.inc"
#undef TANDEM_TGT
}  // namespace scalar

namespace {
std::atomic<bool>& legacy_flag() {
  static std::atomic<bool> on{env_switch_set("TANDEM_SSM_LEGACY")};
  return on;
}
}  // namespace

void set_ssm_legacy(bool on) { legacy_flag().store(on, std::memory_order_relaxed); }
bool ssm_legacy() { return legacy_flag().load(std::memory_order_relaxed); }

Mamba2HeadFn mamba2_seq_head_fn(CpuPath p) {
  Mamba2HeadFn f = nullptr;
  if (p == CpuPath::kAvx512) f = mamba2_seq_head_avx512();
  if (!f && p >= CpuPath::kAvx2) f = mamba2_seq_head_avx2();
  return f ? f : scalar::m2_seq_head;
}

Mamba2ChunkFn mamba2_chunk_head_fn(CpuPath p) {
  Mamba2ChunkFn f = nullptr;
  if (p == CpuPath::kAvx512) f = mamba2_chunk_head_avx512();
  if (!f && p >= CpuPath::kAvx2) f = mamba2_chunk_head_avx2();
  return f ? f : scalar::m2_chunk_head;
}

void mamba2_adopt_head(const Mamba2ScanArgs& a, int s, int h) {
  if (!a.state_in || a.state_in[s] == a.state[s]) return;
  const size_t PN = static_cast<size_t>(a.head_dim) * a.d_state;
  std::memcpy(a.state[s] + h * PN, a.state_in[s] + h * PN, PN * sizeof(float));
}

void ssm_scan_mamba2_sequential(const Mamba2ScanArgs& a, ThreadPool& pool) {
  TANDEM_PROF_OP(kSsmScan);  // bench --profile (core/profiler.h)
  if (a.n_seqs <= 0 || a.n_seq_tokens <= 0) return;
  const int64_t n = static_cast<int64_t>(a.n_seqs) * a.n_head;
  const CpuPath path = active_cpu_path();
  Mamba2HeadRangeFn fast = nullptr;
  if (!ssm_legacy() && path == CpuPath::kAvx512) fast = mamba2_seq_head_fast_avx512();
  if (!ssm_legacy() && path == CpuPath::kAvx2) fast = mamba2_seq_head_fast_avx2();
  if (fast) {
    // Each (sequence, head) still sees its tokens in order; blocks of
    // kTokenBlock tokens go across the thread's heads so the strided token
    // rows of x / y are reused while their pages and lines are hot.
    constexpr int kTokenBlock = 16;
    const int T = a.n_seq_tokens;
    pool.parallel_for(n, [&](int64_t i0, int64_t i1, int) {
      mamba2_prefetch_block(a, i0, i1, 0, kTokenBlock);
      for (int t0 = 0; t0 < T; t0 += kTokenBlock) {
        const int t1 = std::min(T, t0 + kTokenBlock);
        if (t1 < T) mamba2_prefetch_block(a, i0, i1, t1, t1 + kTokenBlock);  // the next block, one block ahead
        for (int64_t i = i0; i < i1; ++i) {
          // The next item's state (P x N floats) while this one computes:
          // decode steps of many sequences stream states from beyond L2.
          if (i + 1 < i1) mamba2_prefetch_state(a, i + 1, t0);
          fast(a, static_cast<int>(i / a.n_head), static_cast<int>(i % a.n_head), t0, t1);
        }
      }
    });
    return;
  }
  const Mamba2HeadFn fn = mamba2_seq_head_fn(path);
  pool.parallel_for(n, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const int s = static_cast<int>(i / a.n_head), h = static_cast<int>(i % a.n_head);
      mamba2_adopt_head(a, s, h);  // out of place: start from the old state
      fn(a, s, h);
    }
  });
}

void ssm_scan_mamba2(const Mamba2ScanArgs& a, ThreadPool& pool) {
  TANDEM_PROF_OP(kSsmScan);  // bench --profile (core/profiler.h)
  // Measured on Granite-4.0-H-350M shapes (docs/benchmarks.md): the vectorized
  // sequential form is faster than the chunked form at every chunk length we
  // tried, so it is the default until the chunked form shares C·B across the
  // heads of a group. Micro-batches beyond kMamba2ChunkMinTokens use chunked.
  if (a.n_seq_tokens >= kMamba2ChunkMinTokens) ssm_scan_mamba2_chunked(a, kMamba2DefaultChunk, pool);
  else ssm_scan_mamba2_sequential(a, pool);
}

void ssm_scan_mamba1(const Mamba1ScanArgs& a, ThreadPool& pool) {
  TANDEM_PROF_OP(kSsmScan);  // bench --profile (core/profiler.h)
  if (a.n_seqs <= 0 || a.n_seq_tokens <= 0) return;
  const int N = a.d_state, T = a.n_seq_tokens, Di = a.d_inner;
  constexpr int kBlock = 16;
  const int64_t blocks_per_seq = (Di + kBlock - 1) / kBlock;
  pool.parallel_for(a.n_seqs * blocks_per_seq, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const int s = static_cast<int>(i / blocks_per_seq);
      const int c0 = static_cast<int>(i % blocks_per_seq) * kBlock;
      const int c1 = std::min(Di, c0 + kBlock);
      for (int c = c0; c < c1; ++c) {
        float* S = a.state[s] + static_cast<size_t>(c) * N;
        // Out of place, token 0 reads the old state; later tokens read S.
        const float* Sin = (a.state_in ? a.state_in[s] : a.state[s]) + static_cast<size_t>(c) * N;
        const float* A = a.A + static_cast<size_t>(c) * N;
        const float D = a.D ? a.D[c] : 0.0f;
        const float bias = a.dt_bias ? a.dt_bias[c] : 0.0f;
        for (int t = 0; t < T; ++t) {
          const size_t row = static_cast<size_t>(s) * T + t;
          const float x = a.x[row * a.x_stride + c];
          const float dt = softplus(a.dt[row * a.dt_stride + c] + bias);
          const float xdt = x * dt;
          const float* B = a.B + row * a.B_stride;
          const float* C = a.C + row * a.C_stride;
          float sum = 0;
          for (int n = 0; n < N; ++n) {
            const float v = Sin[n] * std::exp(dt * A[n]) + B[n] * xdt;
            S[n] = v;
            sum += v * C[n];
          }
          Sin = S;
          a.y[row * a.y_stride + c] = sum + D * x;
        }
      }
    }
  });
}

}  // namespace tandem::kernels
