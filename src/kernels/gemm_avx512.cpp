// AVX-512 (F/BW/VL/DQ/VNNI) matmul kernels. Everything SIMD here has internal
// linkage and a target attribute: this file is compiled like any other, so
// no AVX-512 code can leak into scalar callers through shared inline code.
// GCC 12 reports its own _mm512_undefined_* placeholders inside the AVX-512
// reduce/mask intrinsics as uninitialised (a false positive of the headers).
#include "kernels/simd_target.h"  // first: target attributes, GCC 12 warning workaround
#include <immintrin.h>

#include <type_traits>
#include <vector>

#include "kernels/gemm_internal.h"
#include "kernels/hsum.h"
#include "kernels/k4_scales.h"
#include "kernels/quant_blocks.h"

namespace tandem::kernels {
namespace avx512 {

#define TANDEM_TGT TANDEM_TARGET_AVX512
#define TANDEM_DOT(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
#define TANDEM_DOT16(acc, a, b) _mm256_dpwssd_epi32((acc), (a), (b))
#include "kernels/gemm_q_simd.inc"

namespace {

// Load 16 elements of a float-like row as f32 (masked for the tail).
template <DType T>
TANDEM_TGT inline __m512 load16(const void* p, int64_t k, __mmask16 m) {
  if constexpr (T == DType::F32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(p) + k);
  } else if constexpr (T == DType::F16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + k));
  } else {  // BF16: the bits are the top half of an f32
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + k);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

// RT rows x CT columns of dot products (weights and activations in type T).
template <DType T, int RT, int CT>
TANDEM_TGT void tile_f(const GemmTask& t, int64_t r, int c0) {
  const Matrix& w = *t.w;
  const int64_t K = w.cols;
  const char* wr[RT];
  const char* xa[CT];
  for (int i = 0; i < RT; ++i) wr[i] = static_cast<const char*>(w.data) + static_cast<size_t>(r + i) * w.row_stride;
  for (int j = 0; j < CT; ++j) xa[j] = static_cast<const char*>(t.act) + (c0 + j) * t.act_row_bytes;
  __m512 acc[RT][CT];
  for (int i = 0; i < RT; ++i)
    for (int j = 0; j < CT; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 wv[RT];
    for (int i = 0; i < RT; ++i) wv[i] = load16<T>(wr[i], k, 0xFFFF);
    for (int j = 0; j < CT; ++j) {
      const __m512 xv = load16<T>(xa[j], k, 0xFFFF);
      for (int i = 0; i < RT; ++i) acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
    }
  }
  if (k < K) {
    const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1);
    __m512 wv[RT];
    for (int i = 0; i < RT; ++i) wv[i] = load16<T>(wr[i], k, m);
    for (int j = 0; j < CT; ++j) {
      const __m512 xv = load16<T>(xa[j], k, m);
      for (int i = 0; i < RT; ++i) acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
    }
  }
  for (int i = 0; i < RT; ++i)
    for (int j = 0; j < CT; ++j) t.y[static_cast<size_t>(c0 + j) * w.rows + r + i] = _mm512_reduce_add_ps(acc[i][j]);
}

template <DType T, int CT>
TANDEM_TGT void rows_f(const GemmTask& t, int64_t r0, int64_t r1, int c0) {
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) tile_f<T, 4, CT>(t, r, c0);
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
}  // namespace avx512

GemmRowsFn gemm_rows_avx512(DType w) {
  switch (w) {
    case DType::F32: return avx512::gemm_f32;
    case DType::F16: return avx512::gemm_f16;
    case DType::BF16: return avx512::gemm_bf16;
    default: return avx512::quantized_kernel(w);
  }
}

}  // namespace tandem::kernels
