// Mamba2 sequential scan, one (sequence, head) over all its tokens, written
// with intrinsics for AVX-512 and AVX2. Same float operations, in the same
// order, per output element as the compiler-vectorized body of
// ssm_scan_body.inc on the same path (tests/kernels/test_ssm_fast.cpp checks
// bit-identity against it and against an explicit formula):
//   dt  = softplus(dt_raw + dt_bias),  dA = exp(dt * A),  xdt = x[p] * dt
//   S[p][n] = fma(S[p][n], dA, B[n] * xdt)                      (B*xdt rounded)
//   acc_k   = fma(S[p][n], C[n], acc_k) over n = k, k+16, ... (16 partial sums)
//   s       = tail: fma chain over n = 16*floor(N/16) .. N-1, from 0
//   s       = s + acc_0 + acc_1 + ... + acc_15                  (in this order)
//   y[p]    = fma(D, x[p], s)
// What changes is the loop structure:
//  - the per-row horizontal reduction of the 16 partial sums (16 dependent
//    scalar adds per row) becomes vertical: 16 rows' partial sums are
//    transposed so lane j holds row p0+j, and the 16 sums are added in the
//    same order with vector adds;
//  - AVX-512 advances each state vector through two tokens per load/store
//    (tokens512<NV, 2>), with 2 rows x 2 tokens of partial-sum chains
//    interleaved; AVX2 goes one token at a time, rows in blocks of 8;
//  - the driver (ssm.cpp) walks blocks of 16 tokens across a thread's heads
//    and prefetches the next block's x / dt / B / C / y lines and the next
//    head's state.
// The scalar twin is scalar::m2_seq_head (ssm.cpp, no fused multiply-add).
// g++ 12 reports its own intrinsics' undefined-source idiom (_mm512_undefined_ps)
// as maybe-uninitialized; act_fast.cpp does the same.
#include "kernels/simd_target.h"  // first: target attributes, GCC 12 warning workaround
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/env.h"
#include "kernels/ssm_internal.h"
#include "kernels/transpose16.h"

namespace tandem::kernels {
namespace {

#define TGT512 TANDEM_TARGET_AVX512
#define TGT256 TANDEM_TARGET_AVX2

// Scalar fused multiply-add (one rounding), as vfmadd*ss.
TGT256 inline float fma1(float a, float b, float c) {
  return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)));
}

// The N % 16 trailing states of one row: update, and the row's tail sum
// (a sequential fma chain from 0, as the reference body's remainder loop).
TGT256 inline float tail_row(const float* sin, float* sp, const float* B, const float* C, int n0, int N, float dA,
                             float xdt) {
  float ts = 0.0f;
  for (int n = n0; n < N; ++n) {
    const float v = fma1(sin[n], dA, B[n] * xdt);
    sp[n] = v;
    ts = fma1(v, C[n], ts);
  }
  return ts;
}

// A head walks its tokens with a stride of a whole token row (all heads), so
// each token's x / dt / y lines are fresh cache misses that sit on the
// state's dependency chain. Fetch them kPrefetch tokens ahead (B and C are
// shared by the heads of a group and mostly cached already).
constexpr int kPrefetch = 4;

inline void prefetch_lines(const float* p, int n) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int i = 0; i < n * 4; i += 64) _mm_prefetch(c + i, _MM_HINT_T0);
}

inline void prefetch_l2(const float* p, size_t n) {
  const char* c = reinterpret_cast<const char*>(p);
  for (size_t i = 0; i < n * 4; i += 64) _mm_prefetch(c + i, _MM_HINT_T1);
}

inline void prefetch_token(const Mamba2ScanArgs& a, int s, int t, int h, int g) {
  if (t >= a.n_seq_tokens) return;
  const size_t row = static_cast<size_t>(s) * a.n_seq_tokens + t;
  const int P = a.head_dim, N = a.d_state;
  prefetch_lines(a.x + row * a.x_stride + static_cast<size_t>(h) * P, P);
  prefetch_lines(a.y + row * a.y_stride + static_cast<size_t>(h) * P, P);
  prefetch_lines(a.dt + row * a.dt_stride + h, 1);
  prefetch_lines(a.B + row * a.B_stride + static_cast<size_t>(g) * N, N);
  prefetch_lines(a.C + row * a.C_stride + static_cast<size_t>(g) * N, N);
}

// ---------------------------------------------------------------- AVX-512

// TANDEM_SCAN_NT=0 (read once): the one-token out-of-place step writes its
// state with ordinary stores (A/B runs).
bool scan_nt_enabled() {
  static const bool on = env_switch_on("TANDEM_SCAN_NT");
  return on;
}

// State of K consecutive tokens of one (sequence, head) during a step.
template <int K>
struct Step512 {
  const float* Sin;  // [P][N] read (the old state on an out-of-place first step, else S)
  float* S;          // [P][N] written
  int N, NF, n_tail0;
  const float *B[K], *C[K];
  float dA[K];
  __m512 vdA[K];
  alignas(64) float xdt[K][16];    // x * dt of the block's 16 rows
  alignas(64) float tails[K][16];  // N % 16 tail sums of the block's rows
  __m512 acc[K][16];               // partial sums of the block's rows
};

// ROWS rows (j .. j+ROWS-1 of the block at p0) through the K tokens: each
// state vector is loaded once, advanced token by token (the partial sums of
// token k taken right after its update) and stored once.
// ST: the state is written with non-temporal stores (see seq_head512).
template <int NV, int K, int ROWS, bool ST = false>
TGT512 inline void rows512(Step512<K>& c, int p0, int j) {
  const int N = NV > 0 ? 16 * NV : c.N, NF = N / 16;
  float* sp[ROWS];
  const float* sin[ROWS];
  __m512 vxdt[K][ROWS], va[K][ROWS];
  for (int r = 0; r < ROWS; ++r) {
    sp[r] = c.S + static_cast<size_t>(p0 + j + r) * N;
    sin[r] = c.Sin + static_cast<size_t>(p0 + j + r) * N;
    for (int k = 0; k < K; ++k) {
      vxdt[k][r] = _mm512_set1_ps(c.xdt[k][j + r]);
      va[k][r] = _mm512_setzero_ps();
    }
  }
  for (int i = 0; i < NF; ++i)
    for (int r = 0; r < ROWS; ++r) {
      __m512 v = _mm512_loadu_ps(sin[r] + 16 * i);
      for (int k = 0; k < K; ++k) {
        v = _mm512_fmadd_ps(v, c.vdA[k], _mm512_mul_ps(_mm512_loadu_ps(c.B[k] + 16 * i), vxdt[k][r]));
        va[k][r] = _mm512_fmadd_ps(v, _mm512_loadu_ps(c.C[k] + 16 * i), va[k][r]);
      }
      if constexpr (ST) _mm512_stream_ps(sp[r] + 16 * i, v);
      else _mm512_storeu_ps(sp[r] + 16 * i, v);
    }
  for (int r = 0; r < ROWS; ++r)
    for (int k = 0; k < K; ++k) {
      c.acc[k][j + r] = va[k][r];
      c.tails[k][j + r] = NV > 0 ? 0.0f : tail_row(k == 0 ? sin[r] : sp[r], sp[r], c.B[k], c.C[k], NF * 16, N, c.dA[k],
                                                   c.xdt[k][j + r]);
    }
}

// Tokens t .. t+K-1 of one (sequence, head). K = 2 halves the state's
// load/store traffic; rows go in groups of 4/K so that 4 independent
// partial-sum chains are in flight.
// NV > 0: N == 16 * NV (fixed loop bounds); NV == 0: any N, the N % 16
// tail in scalar (tail_row, token by token).
template <int NV, int K, bool ST = false>
TGT512 void tokens512(const Mamba2ScanArgs& a, int s, int h, int g, int t, const float* Sin, float* S) {
  constexpr int R = 4 / K;
  const int P = a.head_dim, N = NV > 0 ? 16 * NV : a.d_state, T = a.n_seq_tokens;
  const float bias = a.dt_bias ? a.dt_bias[h] : 0.0f;
  const __m512 vD = _mm512_set1_ps(a.D ? a.D[h] : 0.0f);
  Step512<K> c;
  c.Sin = Sin;
  c.S = S;
  c.N = N;
  c.NF = N / 16;
  c.n_tail0 = c.NF * 16;
  const float* x[K];
  float* y[K];
  float dt[K];
  for (int k = 0; k < K; ++k) {
    const size_t row = static_cast<size_t>(s) * T + t + k;
    x[k] = a.x + row * a.x_stride + static_cast<size_t>(h) * P;
    c.B[k] = a.B + row * a.B_stride + static_cast<size_t>(g) * N;
    c.C[k] = a.C + row * a.C_stride + static_cast<size_t>(g) * N;
    y[k] = a.y + row * a.y_stride + static_cast<size_t>(h) * P;
    dt[k] = softplus(a.dt[row * a.dt_stride + h] + bias);
    c.dA[k] = std::exp(dt[k] * a.A[h]);
    c.vdA[k] = _mm512_set1_ps(c.dA[k]);
  }
  __m512 vx[K];
  for (int p0 = 0; p0 < P; p0 += 16) {
    const int np = std::min(16, P - p0);
    const __mmask16 m = static_cast<__mmask16>((1u << np) - 1u);
    for (int k = 0; k < K; ++k) {
      vx[k] = np == 16 ? _mm512_loadu_ps(x[k] + p0) : _mm512_maskz_loadu_ps(m, x[k] + p0);
      _mm512_store_ps(c.xdt[k], _mm512_mul_ps(vx[k], _mm512_set1_ps(dt[k])));
    }
    int j = 0;
    for (; j + R <= np; j += R) rows512<NV, K, R, ST>(c, p0, j);
    for (; j < np; ++j) rows512<NV, K, 1, ST>(c, p0, j);
    for (int k = 0; k < K; ++k) {
      for (int jj = np; jj < 16; ++jj) {
        c.acc[k][jj] = _mm512_setzero_ps();
        c.tails[k][jj] = 0.0f;
      }
      transpose16(c.acc[k]);  // acc[k][q] lane j = partial sum q of row p0 + j
      __m512 sum = _mm512_load_ps(c.tails[k]);
      for (int q = 0; q < 16; ++q) sum = _mm512_add_ps(sum, c.acc[k][q]);
      _mm512_mask_storeu_ps(y[k] + p0, m, _mm512_fmadd_ps(vD, vx[k], sum));
    }
  }
}

template <int NV>
TGT512 void seq_head512(const Mamba2ScanArgs& a, int s, int h, int t_begin, int t_end) {
  const int g = h / (a.n_head / a.n_group);
  float* S = a.state[s] + static_cast<size_t>(h) * a.head_dim * a.d_state;  // [P][N]
  // Out of place, the first step reads the old state and writes S; the
  // later steps update S in place.
  const float* Sin = t_begin == 0 ? mamba2_state_src(a, s, h) : S;
  // A one-token step out of place (decode with the double-buffered state):
  // the new state is not read again before the next step, by which time the
  // step's weights have evicted it, so it is written with non-temporal
  // stores: no read-for-ownership of the destination lines (a third of the
  // scan's memory traffic). Same values, same bits; the fence orders the
  // stores before the pool's end-of-job handshake.
  if constexpr (NV > 0) {
    if (a.n_seq_tokens == 1 && Sin != S && (reinterpret_cast<uintptr_t>(S) & 63) == 0 && scan_nt_enabled()) {
      tokens512<NV, 1, true>(a, s, h, g, t_begin, Sin, S);
      _mm_sfence();
      return;
    }
  }
  for (int t = t_begin; t < t_begin + kPrefetch - 1; ++t) prefetch_token(a, s, t, h, g);
  int t = t_begin;
  for (; t + 2 <= t_end; t += 2) {
    prefetch_token(a, s, t + kPrefetch - 1, h, g);
    prefetch_token(a, s, t + kPrefetch, h, g);
    tokens512<NV, 2>(a, s, h, g, t, Sin, S);
    Sin = S;
  }
  if (t < t_end) tokens512<NV, 1>(a, s, h, g, t, Sin, S);
}

TGT512 void seq_head512_any(const Mamba2ScanArgs& a, int s, int h, int t_begin, int t_end) {
  switch (a.d_state) {
    case 128: seq_head512<8>(a, s, h, t_begin, t_end); return;
    case 64: seq_head512<4>(a, s, h, t_begin, t_end); return;
    default: seq_head512<0>(a, s, h, t_begin, t_end); return;
  }
}

// ---------------------------------------------------------------- AVX2

// In place: r[k] lane j <- r[j] lane k (8 x 8 floats).
TGT256 inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int b = 0; b < 2; ++b) {
    u[4 * b + 0] = _mm256_shuffle_ps(t[4 * b], t[4 * b + 2], 0x44);
    u[4 * b + 1] = _mm256_shuffle_ps(t[4 * b], t[4 * b + 2], 0xEE);
    u[4 * b + 2] = _mm256_shuffle_ps(t[4 * b + 1], t[4 * b + 3], 0x44);
    u[4 * b + 3] = _mm256_shuffle_ps(t[4 * b + 1], t[4 * b + 3], 0xEE);
  }
  for (int e = 0; e < 4; ++e) {
    r[e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x20);
    r[4 + e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x31);
  }
}

// The 16 partial sums of a row are two vectors (k = 0..7 and 8..15); rows
// go in blocks of 8 (lanes of the transposed sums).
TGT256 void seq_head256(const Mamba2ScanArgs& a, int s, int h, int t_begin, int t_end) {
  const int P = a.head_dim, N = a.d_state, T = a.n_seq_tokens;
  const int NF = N / 16, n_tail0 = NF * 16;
  const int g = h / (a.n_head / a.n_group);
  if (t_begin == 0) mamba2_adopt_head(a, s, h);  // out of place: start from the old state
  float* S = a.state[s] + static_cast<size_t>(h) * P * N;  // [P][N]
  const float bias = a.dt_bias ? a.dt_bias[h] : 0.0f;
  const __m256 vD = _mm256_set1_ps(a.D ? a.D[h] : 0.0f);
  alignas(32) float xs[8], xdt[8], tails[8];
  alignas(32) float lo[8][8], hi[8][8];  // row j's partial sums 0..7 and 8..15
  for (int t = t_begin; t < t_begin + kPrefetch - 1; ++t) prefetch_token(a, s, t, h, g);
  for (int t = t_begin; t < t_end; ++t) {
    prefetch_token(a, s, t + kPrefetch - 1, h, g);
    const size_t row = static_cast<size_t>(s) * T + t;
    const float* x = a.x + row * a.x_stride + static_cast<size_t>(h) * P;
    const float* B = a.B + row * a.B_stride + static_cast<size_t>(g) * N;
    const float* C = a.C + row * a.C_stride + static_cast<size_t>(g) * N;
    float* y = a.y + row * a.y_stride + static_cast<size_t>(h) * P;
    const float dt = softplus(a.dt[row * a.dt_stride + h] + bias);
    const float dA = std::exp(dt * a.A[h]);
    const __m256 vdA = _mm256_set1_ps(dA);
    for (int p0 = 0; p0 < P; p0 += 8) {
      const int np = std::min(8, P - p0);
      for (int j = 0; j < 8; ++j) xs[j] = j < np ? x[p0 + j] : 0.0f;
      const __m256 vx = _mm256_load_ps(xs);
      _mm256_store_ps(xdt, _mm256_mul_ps(vx, _mm256_set1_ps(dt)));
      for (int j = 0; j < np; ++j) {
        float* sp = S + static_cast<size_t>(p0 + j) * N;
        const __m256 vxdt = _mm256_set1_ps(xdt[j]);
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (int i = 0; i < NF; ++i) {
          float* si = sp + 16 * i;
          const __m256 v0 = _mm256_fmadd_ps(_mm256_loadu_ps(si), vdA, _mm256_mul_ps(_mm256_loadu_ps(B + 16 * i), vxdt));
          const __m256 v1 =
              _mm256_fmadd_ps(_mm256_loadu_ps(si + 8), vdA, _mm256_mul_ps(_mm256_loadu_ps(B + 16 * i + 8), vxdt));
          _mm256_storeu_ps(si, v0);
          _mm256_storeu_ps(si + 8, v1);
          a0 = _mm256_fmadd_ps(v0, _mm256_loadu_ps(C + 16 * i), a0);
          a1 = _mm256_fmadd_ps(v1, _mm256_loadu_ps(C + 16 * i + 8), a1);
        }
        _mm256_store_ps(lo[j], a0);
        _mm256_store_ps(hi[j], a1);
        tails[j] = tail_row(sp, sp, B, C, n_tail0, N, dA, xdt[j]);
      }
      for (int j = np; j < 8; ++j) {
        _mm256_store_ps(lo[j], _mm256_setzero_ps());
        _mm256_store_ps(hi[j], _mm256_setzero_ps());
        tails[j] = 0.0f;
      }
      __m256 r[8];
      __m256 sum = _mm256_load_ps(tails);
      for (int j = 0; j < 8; ++j) r[j] = _mm256_load_ps(lo[j]);
      transpose8(r);
      for (int k = 0; k < 8; ++k) sum = _mm256_add_ps(sum, r[k]);
      for (int j = 0; j < 8; ++j) r[j] = _mm256_load_ps(hi[j]);
      transpose8(r);
      for (int k = 0; k < 8; ++k) sum = _mm256_add_ps(sum, r[k]);
      alignas(32) float out[8];
      _mm256_store_ps(out, _mm256_fmadd_ps(vD, vx, sum));
      for (int j = 0; j < np; ++j) y[p0 + j] = out[j];
    }
  }
}

}  // namespace

void mamba2_prefetch_block(const Mamba2ScanArgs& a, int64_t i0, int64_t i1, int t0, int t1) {
  const int H = a.n_head, P = a.head_dim, N = a.d_state, T = a.n_seq_tokens;
  t1 = std::min(t1, T);
  for (int64_t i = i0; i < i1;) {
    // items i0..i1 are (s, h) pairs: one contiguous run of heads per sequence
    const int s = static_cast<int>(i / H), h0 = static_cast<int>(i % H);
    const int h1 = static_cast<int>(std::min<int64_t>(H, h0 + (i1 - i)));
    const int g0 = h0 / (H / a.n_group), g1 = (h1 - 1) / (H / a.n_group) + 1;
    for (int t = t0; t < t1; ++t) {
      const size_t row = static_cast<size_t>(s) * T + t;
      prefetch_l2(a.x + row * a.x_stride + static_cast<size_t>(h0) * P, static_cast<size_t>(h1 - h0) * P);
      prefetch_l2(a.y + row * a.y_stride + static_cast<size_t>(h0) * P, static_cast<size_t>(h1 - h0) * P);
      prefetch_l2(a.dt + row * a.dt_stride + h0, static_cast<size_t>(h1 - h0));
      prefetch_l2(a.B + row * a.B_stride + static_cast<size_t>(g0) * N, static_cast<size_t>(g1 - g0) * N);
      prefetch_l2(a.C + row * a.C_stride + static_cast<size_t>(g0) * N, static_cast<size_t>(g1 - g0) * N);
    }
    i += h1 - h0;
  }
}

void mamba2_prefetch_state(const Mamba2ScanArgs& a, int64_t i, int t) {
  const size_t PN = static_cast<size_t>(a.head_dim) * a.d_state;
  const int s = static_cast<int>(i / a.n_head), h = static_cast<int>(i % a.n_head);
  prefetch_l2(t == 0 ? mamba2_state_src(a, s, h) : a.state[s] + static_cast<size_t>(h) * PN, PN);
}

Mamba2HeadRangeFn mamba2_seq_head_fast_avx512() { return seq_head512_any; }
Mamba2HeadRangeFn mamba2_seq_head_fast_avx2() { return seq_head256; }

}  // namespace tandem::kernels
