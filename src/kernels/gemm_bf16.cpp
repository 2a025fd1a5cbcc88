// BF16 × BF16 matmul in the reference engine's accumulation order
// (gemm_bf16.h explains the two layouts). Scalar twin + AVX-512 kernels.
// GCC 12 reports its own _mm512_undefined_* placeholders inside the AVX-512
// reduce intrinsics as uninitialised (a false positive of the headers).
#include "kernels/simd_target.h"  // first: target attributes, GCC 12 warning workaround
#include "kernels/gemm_bf16.h"

#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/cpu.h"

namespace tandem::kernels {

Bf16Layout bf16_layout(int64_t rows, int64_t cols, int n_cols) {
  // The reference's prompt GEMM takes >= 2 columns when K is a multiple of its
  // 32-element step and the rows a multiple of its 4-row tile; otherwise it
  // falls back to its per-row dot product.
  return (n_cols >= 2 && cols % 32 == 0 && rows % 4 == 0) ? Bf16Layout::kSgemm : Bf16Layout::kVecDot;
}

namespace {

// ---------------------------------------------------------------- scalar twin
inline float flush(float v) { return std::fpclassify(v) == FP_SUBNORMAL ? std::copysign(0.0f, v) : v; }
inline float bf_in(uint16_t b) { return flush(bf16_to_f32(b)); }

// One vdpbf16ps lane update over the pair (2j, 2j+1) at p: odd element first,
// each sum rounded to f32 (the bf16 products are exact in f32).
inline float dp_pair(float acc, const uint16_t* w, const uint16_t* x) {
  acc = flush(flush(acc) + flush(bf_in(w[1]) * bf_in(x[1])));
  return flush(acc + flush(bf_in(w[0]) * bf_in(x[0])));
}

// _mm512_reduce_add_ps as GCC forms it: halves 8+8, 4+4, then (0+2, 1+3), then the two.
inline float reduce16(const float* a) {
  float h8[8], h4[4];
  for (int i = 0; i < 8; ++i) h8[i] = a[i + 8] + a[i];
  for (int i = 0; i < 4; ++i) h4[i] = h8[i + 4] + h8[i];
  const float s0 = h4[0] + h4[2], s1 = h4[1] + h4[3];
  return s0 + s1;
}

// 16 lanes over one 32-element chunk.
inline void dp_chunk(float* acc, const uint16_t* w, const uint16_t* x) {
  for (int j = 0; j < 16; ++j) acc[j] = dp_pair(acc[j], w + 2 * j, x + 2 * j);
}

}  // namespace

float dot_bf16_sgemm_scalar(const uint16_t* w, const uint16_t* x, int64_t n) {
  float acc[16] = {};
  for (int64_t k = 0; k + 32 <= n; k += 32) dp_chunk(acc, w + k, x + k);
  return reduce16(acc);
}

float dot_bf16_vecdot_scalar(const uint16_t* w, const uint16_t* x, int64_t n) {
  float c1[16] = {}, c2[16] = {};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    dp_chunk(c1, w + i, x + i);
    dp_chunk(c2, w + i + 32, x + i + 32);
  }
  double s = 0;
  s += static_cast<double>(reduce16(c1));
  s += static_cast<double>(reduce16(c2));
  for (; i < n; ++i) s += static_cast<double>(bf16_to_f32(w[i]) * bf16_to_f32(x[i]));
  return static_cast<float>(s);
}

namespace {

template <bool kSgemm>
void rows_scalar(const GemmTask& t, int64_t r0, int64_t r1) {
  const Matrix& w = *t.w;
  const char* act = static_cast<const char*>(t.act);
  for (int64_t r = r0; r < r1; ++r) {
    const auto* wr = reinterpret_cast<const uint16_t*>(static_cast<const char*>(w.data) + static_cast<size_t>(r) * w.row_stride);
    for (int c = 0; c < t.n_cols; ++c) {
      const auto* xr = reinterpret_cast<const uint16_t*>(act + c * t.act_row_bytes);
      t.y[static_cast<size_t>(c) * w.rows + r] =
          kSgemm ? dot_bf16_sgemm_scalar(wr, xr, w.cols) : dot_bf16_vecdot_scalar(wr, xr, w.cols);
    }
  }
}

// ---------------------------------------------------------------- AVX-512
#define TANDEM_TGT TANDEM_TARGET_AVX512_BF16

// acc += pairs of w·x per lane, odd element first (vdpbf16ps, or the same on FMA).
template <bool kHw>
TANDEM_TGT inline __m512 dp(__m512 acc, __m512i w, __m512i x) {
  if constexpr (kHw) {
    return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh&>(w), reinterpret_cast<__m512bh&>(x));
  } else {
    const __m512i hi = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
    acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(w, hi)), _mm512_castsi512_ps(_mm512_and_si512(x, hi)), acc);
    return _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(w, 16)), _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)), acc);
  }
}

// RT weight rows × CT activation columns. kSgemm: one lane set per product
// (K % 32 == 0). Otherwise the vec-dot layout: two lane sets over alternate
// 32-element chunks of each 64, then a double tail.
template <bool kHw, bool kSgemm, int RT, int CT>
TANDEM_TGT void tile(const GemmTask& t, int64_t r, int c0) {
  const Matrix& w = *t.w;
  const int64_t K = w.cols;
  const uint16_t* wr[RT];
  const uint16_t* xa[CT];
  for (int i = 0; i < RT; ++i)
    wr[i] = reinterpret_cast<const uint16_t*>(static_cast<const char*>(w.data) + static_cast<size_t>(r + i) * w.row_stride);
  for (int j = 0; j < CT; ++j)
    xa[j] = reinterpret_cast<const uint16_t*>(static_cast<const char*>(t.act) + (c0 + j) * t.act_row_bytes);
  __m512 a1[RT][CT], a2[RT][CT];
  for (int i = 0; i < RT; ++i)
    for (int j = 0; j < CT; ++j) a1[i][j] = a2[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  if constexpr (kSgemm) {
    for (; k + 32 <= K; k += 32) {
      __m512i wv[RT];
      for (int i = 0; i < RT; ++i) wv[i] = _mm512_loadu_si512(wr[i] + k);
      for (int j = 0; j < CT; ++j) {
        const __m512i xv = _mm512_loadu_si512(xa[j] + k);
        for (int i = 0; i < RT; ++i) a1[i][j] = dp<kHw>(a1[i][j], wv[i], xv);
      }
    }
    for (int i = 0; i < RT; ++i)
      for (int j = 0; j < CT; ++j) t.y[static_cast<size_t>(c0 + j) * w.rows + r + i] = _mm512_reduce_add_ps(a1[i][j]);
  } else {
    for (; k + 64 <= K; k += 64) {
      __m512i wv[RT], wv2[RT];
      for (int i = 0; i < RT; ++i) {
        wv[i] = _mm512_loadu_si512(wr[i] + k);
        wv2[i] = _mm512_loadu_si512(wr[i] + k + 32);
      }
      for (int j = 0; j < CT; ++j) {
        const __m512i xv = _mm512_loadu_si512(xa[j] + k);
        const __m512i xv2 = _mm512_loadu_si512(xa[j] + k + 32);
        for (int i = 0; i < RT; ++i) {
          a1[i][j] = dp<kHw>(a1[i][j], wv[i], xv);
          a2[i][j] = dp<kHw>(a2[i][j], wv2[i], xv2);
        }
      }
    }
    for (int i = 0; i < RT; ++i)
      for (int j = 0; j < CT; ++j) {
        double s = 0;
        s += static_cast<double>(_mm512_reduce_add_ps(a1[i][j]));
        s += static_cast<double>(_mm512_reduce_add_ps(a2[i][j]));
        for (int64_t e = k; e < K; ++e) s += static_cast<double>(bf16_to_f32(wr[i][e]) * bf16_to_f32(xa[j][e]));
        t.y[static_cast<size_t>(c0 + j) * w.rows + r + i] = static_cast<float>(s);
      }
  }
}

template <bool kHw, bool kSgemm, int CT>
TANDEM_TGT void rows_ct(const GemmTask& t, int64_t r0, int64_t r1, int c0) {
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) tile<kHw, kSgemm, 4, CT>(t, r, c0);
  for (; r < r1; ++r) tile<kHw, kSgemm, 1, CT>(t, r, c0);
}

template <bool kHw, bool kSgemm>
TANDEM_TGT void rows_avx512(const GemmTask& t, int64_t r0, int64_t r1) {
  int c0 = 0;
  for (; c0 + 4 <= t.n_cols; c0 += 4) rows_ct<kHw, kSgemm, 4>(t, r0, r1, c0);
  switch (t.n_cols - c0) {
    case 3: rows_ct<kHw, kSgemm, 3>(t, r0, r1, c0); break;
    case 2: rows_ct<kHw, kSgemm, 2>(t, r0, r1, c0); break;
    case 1: rows_ct<kHw, kSgemm, 1>(t, r0, r1, c0); break;
    default: break;
  }
}
#undef TANDEM_TGT

}  // namespace

GemmRowsFn gemm_rows_bf16_scalar(Bf16Layout layout) {
  return layout == Bf16Layout::kSgemm ? rows_scalar<true> : rows_scalar<false>;
}

GemmRowsFn gemm_rows_bf16_avx512(Bf16Layout layout) {
  const bool hw = cpu_features().avx512bf16;
  if (layout == Bf16Layout::kSgemm) return hw ? rows_avx512<true, true> : rows_avx512<false, true>;
  return hw ? rows_avx512<true, false> : rows_avx512<false, false>;
}

}  // namespace tandem::kernels
