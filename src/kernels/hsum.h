#pragma once
// The 8-lane float sum every SIMD kernel ends its rows with. Kernel .cpp files
// only (it includes simd_target.h). Its order (the two 128-bit halves, then
// pairs, then the last two) is part of bit-exact contracts: the row-block
// kernels of gemm_q_simd.inc, the wide K-quant prefill kernels and the decode
// GEMVs must all finish an output the same way, so they share this one.
// AVX2 target: callable (and inlined) from the AVX-512 functions as well.
#include "kernels/simd_target.h"  // first: target attributes, GCC 12 warning workaround
#include <immintrin.h>

namespace tandem::kernels {

TANDEM_TARGET_AVX2 inline float hsum8_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace tandem::kernels
