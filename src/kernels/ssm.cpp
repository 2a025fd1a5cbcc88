// State-space kernels: causal depthwise conv with carried state, the Mamba2
// selective scan (sequential form) and the Mamba1 scan. States are updated in
// place through the per-sequence pointer arrays.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/profiler.h"
#include "kernels/act_fast.h"
#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/ssm_internal.h"
#include "kernels/thread_pool.h"

namespace tandem::kernels {

void ssm_conv(const ConvArgs& a, ThreadPool& pool) {
  TANDEM_PROF_OP(kConv);  // bench --profile (core/profiler.h)
  const int W = a.width, T = a.n_seq_tokens, C = a.channels;
  if (C <= 0 || T <= 0 || a.n_seqs <= 0) return;
  // Work item: a block of channels, all sequences (channels are independent).
  constexpr int kBlock = 64;
  const int64_t n_blocks = (C + kBlock - 1) / kBlock;
  pool.parallel_for(n_blocks, [&](int64_t b0, int64_t b1, int) {
    float win[64];  // sliding window of the last W inputs of one channel
    std::vector<float> big;
    float* w = win;
    if (W > 64) {
      big.resize(static_cast<size_t>(W));
      w = big.data();
    }
    const int c_end = std::min<int64_t>(C, b1 * kBlock);
    for (int s = 0; s < a.n_seqs; ++s) {
      float* st = a.state[s];  // [W-1][C]
      for (int c = static_cast<int>(b0 * kBlock); c < c_end; ++c) {
        for (int k = 0; k < W - 1; ++k) w[k] = st[static_cast<size_t>(k) * C + c];
        const float* wc = a.w + static_cast<size_t>(c) * W;
        for (int t = 0; t < T; ++t) {
          const size_t row = static_cast<size_t>(s) * T + t;
          w[W - 1] = a.x[row * a.x_stride + c];
          float sum = 0;
          for (int k = 0; k < W; ++k) sum += w[k] * wc[k];
          if (a.bias) sum += a.bias[c];
          a.out[row * C + c] = sum;  // SiLU below, vectorized over the block's channels
          for (int k = 0; k + 1 < W; ++k) w[k] = w[k + 1];
        }
        for (int k = 0; k < W - 1; ++k) st[static_cast<size_t>(k) * C + c] = w[k];
      }
      if (a.silu) {
        const int c0 = static_cast<int>(b0 * kBlock);
        for (int t = 0; t < T; ++t) silu_fast(a.out + (static_cast<size_t>(s) * T + t) * C + c0, c_end - c0);
      }
    }
  });
}

namespace scalar {
#define TANDEM_TGT
#include "kernels/ssm_scan_body.inc"
#undef TANDEM_TGT
}  // namespace scalar

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

void ssm_scan_mamba2_sequential(const Mamba2ScanArgs& a, ThreadPool& pool) {
  TANDEM_PROF_OP(kSsmScan);  // bench --profile (core/profiler.h)
  if (a.n_seqs <= 0 || a.n_seq_tokens <= 0) return;
  const int64_t n = static_cast<int64_t>(a.n_seqs) * a.n_head;
  const Mamba2HeadFn fn = mamba2_seq_head_fn(active_cpu_path());
  pool.parallel_for(n, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) fn(a, static_cast<int>(i / a.n_head), static_cast<int>(i % a.n_head));
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
            const float v = S[n] * std::exp(dt * A[n]) + B[n] * xdt;
            S[n] = v;
            sum += v * C[n];
          }
          a.y[row * a.y_stride + c] = sum + D * x;
        }
      }
    }
  });
}

}  // namespace tandem::kernels
