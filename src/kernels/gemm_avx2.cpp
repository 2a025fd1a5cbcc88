// AVX2 + FMA + F16C matmul kernels (see gemm_avx512.cpp for the ODR rule:
// internal linkage + target attributes, no global -m flags).
#include "kernels/simd_target.h"  // first: target attributes, GCC 12 warning workaround
#include <immintrin.h>

#include <type_traits>
#include <vector>

#include "kernels/gemm_internal.h"
#include "kernels/hsum.h"
#include "kernels/k4_scales.h"
#include "kernels/quant_blocks.h"

namespace tandem::kernels {
namespace avx2 {

#define TANDEM_TGT TANDEM_TARGET_AVX2
// u8*s8 pairs into i16 (no saturation: our u8 operands are <= 127 for Q8_0's
// |w| and <= 63 for the K-quants), then pairs of i16 into i32.
#define TANDEM_DOT(acc, u, s) \
  _mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1)))
#define TANDEM_DOT16(acc, a, b) _mm256_add_epi32((acc), _mm256_madd_epi16((a), (b)))
#include "kernels/gemm_q_simd.inc"

namespace {

template <DType T>
TANDEM_TGT inline __m256 load8(const void* p, int64_t k) {
  if constexpr (T == DType::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(p) + k);
  } else if constexpr (T == DType::F16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + k)));
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

template <DType T>
TANDEM_TGT inline float load1(const void* p, int64_t k) {
  if constexpr (T == DType::F32) {
    return static_cast<const float*>(p)[k];
  } else if constexpr (T == DType::F16) {
    return _cvtsh_ss(static_cast<const uint16_t*>(p)[k]);
  } else {
    const uint32_t u = static_cast<uint32_t>(static_cast<const uint16_t*>(p)[k]) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
  }
}

template <DType T, int RT, int CT>
TANDEM_TGT void tile_f(const GemmTask& t, int64_t r, int c0) {
  const Matrix& w = *t.w;
  const int64_t K = w.cols;
  const char* wr[RT];
  const char* xa[CT];
  for (int i = 0; i < RT; ++i) wr[i] = static_cast<const char*>(w.data) + static_cast<size_t>(r + i) * w.row_stride;
  for (int j = 0; j < CT; ++j) xa[j] = static_cast<const char*>(t.act) + (c0 + j) * t.act_row_bytes;
  __m256 acc[RT][CT];
  for (int i = 0; i < RT; ++i)
    for (int j = 0; j < CT; ++j) acc[i][j] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 wv[RT];
    for (int i = 0; i < RT; ++i) wv[i] = load8<T>(wr[i], k);
    for (int j = 0; j < CT; ++j) {
      const __m256 xv = load8<T>(xa[j], k);
      for (int i = 0; i < RT; ++i) acc[i][j] = _mm256_fmadd_ps(wv[i], xv, acc[i][j]);
    }
  }
  for (int i = 0; i < RT; ++i)
    for (int j = 0; j < CT; ++j) {
      float s = hsum8_ps(acc[i][j]);
      for (int64_t kk = k; kk < K; ++kk) s += load1<T>(wr[i], kk) * load1<T>(xa[j], kk);
      t.y[static_cast<size_t>(c0 + j) * w.rows + r + i] = s;
    }
}

template <DType T, int CT>
TANDEM_TGT void rows_f(const GemmTask& t, int64_t r0, int64_t r1, int c0) {
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) tile_f<T, 2, CT>(t, r, c0);
  for (; r < r1; ++r) tile_f<T, 1, CT>(t, r, c0);
}

template <DType T>
TANDEM_TGT void gemm_f(const GemmTask& t, int64_t r0, int64_t r1) {
  int c0 = 0;
  for (; c0 + 4 <= t.n_cols; c0 += 4) rows_f<T, 4>(t, r0, r1, c0);
  switch (t.n_cols - c0) {
    case 3: rows_f<T, 3>(t, r0, r1, c0); break;
    case 2: rows_f<T, 2>(t, r0, r1, c0); break;
    case 1: rows_f<T, 1>(t, r0, r1, c0); break;
    default: break;
  }
}

TANDEM_TGT void gemm_f32(const GemmTask& t, int64_t r0, int64_t r1) { gemm_f<DType::F32>(t, r0, r1); }
TANDEM_TGT void gemm_f16(const GemmTask& t, int64_t r0, int64_t r1) { gemm_f<DType::F16>(t, r0, r1); }
TANDEM_TGT void gemm_bf16(const GemmTask& t, int64_t r0, int64_t r1) { gemm_f<DType::BF16>(t, r0, r1); }

}  // namespace
#undef TANDEM_TGT
#undef TANDEM_DOT
#undef TANDEM_DOT16
}  // namespace avx2

GemmRowsFn gemm_rows_avx2(DType w) {
  switch (w) {
    case DType::F32: return avx2::gemm_f32;
    case DType::F16: return avx2::gemm_f16;
    case DType::BF16: return avx2::gemm_bf16;
    default: return avx2::quantized_kernel(w);
  }
}

}  // namespace tandem::kernels
