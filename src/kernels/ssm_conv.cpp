// Causal depthwise conv1d with carried state (Mamba's short conv), fused with
// the output SiLU. Per sequence s, the input is the concatenation
// [state (W-1 rows); x (T rows)] and, per channel c and token t,
//   out[t][c] = ((((0 + u[t][c] w[c][0]) + u[t+1][c] w[c][1]) + ...) + u[t+W-1][c] w[c][W-1]) + bias[c]
// with every product rounded before its add (no fused multiply-add), then
// SiLU (silu_fast, on rows of 128-channel blocks). The state keeps the last
// W-1 rows of the concatenation.
//
// Scalar twin (TANDEM_CPU=scalar, and the legacy switch): per channel, a
// sliding window over the tokens. SIMD paths: 16 (AVX-512) or 8 (AVX2)
// channels per vector, token-major inside a 128-channel block, weights
// transposed to [W][block] once per block. Same operations in the same order
// per element, so every path gives the same bits before the SiLU.
#include "kernels/simd_target.h"  // first: target attributes, GCC 12 warning workaround
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "core/profiler.h"
#include "kernels/act_fast.h"
#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/ssm_internal.h"
#include "kernels/thread_pool.h"

namespace tandem::kernels {
namespace {

constexpr int kBlock = 128;  // channels per work item (a multiple of 16)
constexpr int kMaxW = 8;     // widest kernel of the SIMD paths

// The per-channel sliding-window form: the scalar twin.
void conv_scalar(const ConvArgs& a, ThreadPool& pool) {
  const int W = a.width, T = a.n_seq_tokens, C = a.channels;
  constexpr int kB = 64;
  const int64_t n_blocks = (C + kB - 1) / kB;
  pool.parallel_for(n_blocks, [&](int64_t b0, int64_t b1, int) {
    float win[64];  // sliding window of the last W inputs of one channel
    std::vector<float> big;
    float* w = win;
    if (W > 64) {
      big.resize(static_cast<size_t>(W));
      w = big.data();
    }
    const int c_end = std::min<int64_t>(C, b1 * kB);
    for (int s = 0; s < a.n_seqs; ++s) {
      float* st = a.state[s];  // [W-1][C]
      for (int c = static_cast<int>(b0 * kB); c < c_end; ++c) {
        for (int k = 0; k < W - 1; ++k) w[k] = st[static_cast<size_t>(k) * C + c];
        const float* wc = a.w + static_cast<size_t>(c) * W;
        for (int t = 0; t < T; ++t) {
          const size_t row = static_cast<size_t>(s) * T + t;
          w[W - 1] = a.x[row * a.x_stride + c];
          float sum = 0;
          for (int k = 0; k < W; ++k) sum += w[k] * wc[k];
          if (a.bias) sum += a.bias[c];
          a.out[row * C + c] = sum;
          for (int k = 0; k + 1 < W; ++k) w[k] = w[k + 1];
        }
        for (int k = 0; k < W - 1; ++k) st[static_cast<size_t>(k) * C + c] = w[k];
      }
      if (a.silu) {
        const int c0 = static_cast<int>(b0 * kB);
        for (int t = 0; t < T; ++t) silu_fast(a.out + (static_cast<size_t>(s) * T + t) * C + c0, c_end - c0);
      }
    }
  });
}

// Row k of the concatenation [state; x] for token t, at channel 0.
inline const float* tap_row(const ConvArgs& a, int s, int t, int k) {
  const int r = t - (a.width - 1) + k;
  if (r >= 0) return a.x + (static_cast<size_t>(s) * a.n_seq_tokens + r) * a.x_stride;
  return a.state[s] + static_cast<size_t>(a.width - 1 + r) * a.channels;
}

// New state rows j = 0..W-2 of channels [c0, c1): row T + j of the
// concatenation. Increasing j only reads rows at or after the one written.
void shift_state(const ConvArgs& a, int s, int c0, int c1) {
  const int W = a.width, T = a.n_seq_tokens, C = a.channels;
  float* st = a.state[s];
  for (int j = 0; j < W - 1; ++j) {
    const int r = T + j - (W - 1);  // row of x, or < 0: row W-1+r of the old state
    const float* src = r >= 0 ? a.x + (static_cast<size_t>(s) * T + r) * a.x_stride
                              : st + static_cast<size_t>(W - 1 + r) * C;
    std::copy(src + c0, src + c1, st + static_cast<size_t>(j) * C + c0);
  }
}

// Keeps a product as a separately rounded value (no contraction into an FMA
// with the add that follows), as in the scalar twin.
#define TANDEM_OPAQUE(v) asm("" : "+v"(v))

#define TGT512 TANDEM_TARGET_AVX512
#define TGT256 TANDEM_TARGET_AVX2

TGT512 void conv_block512(const ConvArgs& a, int s, int c0, int c1) {
  const int W = a.width, T = a.n_seq_tokens, C = a.channels, n = c1 - c0;
  alignas(64) float wt[kMaxW][kBlock];  // [tap][channel - c0]
  for (int c = 0; c < n; ++c)
    for (int k = 0; k < W; ++k) wt[k][c] = a.w[static_cast<size_t>(c0 + c) * W + k];
  const float* src[kMaxW];
  for (int t = 0; t < T; ++t) {
    for (int k = 0; k < W; ++k) src[k] = tap_row(a, s, t, k) + c0;
    float* out = a.out + (static_cast<size_t>(s) * T + t) * C + c0;
    for (int c = 0; c < n; c += 16) {
      const __mmask16 m = static_cast<__mmask16>(n - c >= 16 ? 0xFFFFu : (1u << (n - c)) - 1u);
      __m512 sum = _mm512_setzero_ps();
      for (int k = 0; k < W; ++k) {
        __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, src[k] + c), _mm512_load_ps(&wt[k][c]));
        TANDEM_OPAQUE(p);
        sum = _mm512_add_ps(sum, p);
      }
      if (a.bias) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(m, a.bias + c0 + c));
      _mm512_mask_storeu_ps(out + c, m, sum);
    }
  }
}

TGT256 void conv_block256(const ConvArgs& a, int s, int c0, int c1) {
  const int W = a.width, T = a.n_seq_tokens, C = a.channels, n = c1 - c0;
  alignas(32) float wt[kMaxW][kBlock];
  for (int c = 0; c < n; ++c)
    for (int k = 0; k < W; ++k) wt[k][c] = a.w[static_cast<size_t>(c0 + c) * W + k];
  const int n8 = n & ~7;
  const float* src[kMaxW];
  for (int t = 0; t < T; ++t) {
    for (int k = 0; k < W; ++k) src[k] = tap_row(a, s, t, k) + c0;
    float* out = a.out + (static_cast<size_t>(s) * T + t) * C + c0;
    for (int c = 0; c < n8; c += 8) {
      __m256 sum = _mm256_setzero_ps();
      for (int k = 0; k < W; ++k) {
        __m256 p = _mm256_mul_ps(_mm256_loadu_ps(src[k] + c), _mm256_load_ps(&wt[k][c]));
        TANDEM_OPAQUE(p);
        sum = _mm256_add_ps(sum, p);
      }
      if (a.bias) sum = _mm256_add_ps(sum, _mm256_loadu_ps(a.bias + c0 + c));
      _mm256_storeu_ps(out + c, sum);
    }
    for (int c = n8; c < n; ++c) {
      float sum = 0;
      for (int k = 0; k < W; ++k) {
        float p = src[k][c] * wt[k][c];
        TANDEM_OPAQUE(p);
        sum += p;
      }
      if (a.bias) sum += a.bias[c0 + c];
      out[c] = sum;
    }
  }
}

using ConvBlockFn = void (*)(const ConvArgs&, int, int, int);

void conv_simd(const ConvArgs& a, ConvBlockFn block, ThreadPool& pool) {
  const int T = a.n_seq_tokens, C = a.channels;
  const int64_t per_seq = (C + kBlock - 1) / kBlock;
  auto body = [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const int s = static_cast<int>(i / per_seq);
      const int c0 = static_cast<int>(i % per_seq) * kBlock, c1 = std::min(C, c0 + kBlock);
      block(a, s, c0, c1);
      shift_state(a, s, c0, c1);  // after the block's outputs: they read the old state
      if (a.silu)
        for (int t = 0; t < T; ++t) silu_fast(a.out + (static_cast<size_t>(s) * T + t) * C + c0, c1 - c0);
    }
  };
  // A decode step (a few thousand multiply-adds) costs less than waking the
  // workers: run it on the calling thread. Same blocks, same results.
  constexpr int64_t kInlineWork = 1 << 15;  // rows x channels
  const int64_t n = a.n_seqs * per_seq;
  if (static_cast<int64_t>(a.n_seqs) * T * C < kInlineWork) body(0, n, 0);
  else pool.parallel_for(n, body);
}

}  // namespace

void ssm_conv(const ConvArgs& a, ThreadPool& pool) {
  TANDEM_PROF_OP(kConv);  // bench --profile (core/profiler.h)
  if (a.channels <= 0 || a.n_seq_tokens <= 0 || a.n_seqs <= 0) return;
  const CpuPath p = active_cpu_path();
  if (p == CpuPath::kScalar || a.width < 1 || a.width > kMaxW || ssm_legacy()) return conv_scalar(a, pool);
  conv_simd(a, p == CpuPath::kAvx512 ? conv_block512 : conv_block256, pool);
}

}  // namespace tandem::kernels
