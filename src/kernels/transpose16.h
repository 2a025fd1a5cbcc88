#pragma once
// In-register transpose of a 16 x 16 f32 tile (AVX-512): r[i] holds row i on
// entry and column i on return. Pure data movement (3 shuffle rounds), so the
// bits of whatever a caller computes do not depend on how it is done. Used by
// the tiled GEMM / GEMV (gemm_tiled_avx512.cpp) and the Mamba2 scan
// (ssm_scan_fast.cpp).
#include <immintrin.h>

#include "kernels/simd_target.h"

namespace tandem::kernels {

TANDEM_TARGET_AVX512 inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a0 = _mm512_castps_pd(t[4 * i]), a1 = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d a2 = _mm512_castps_pd(t[4 * i + 2]), a3 = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
  }
  // r[4i + j] now holds, for rows 4i..4i+3, column j (+4m) of each 128-bit lane m.
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) {
      const __m512 a = r[8 * i + j], b = r[8 * i + 4 + j];
      t[8 * i + j] = _mm512_shuffle_f32x4(a, b, 0x88);      // lanes 0,2 of a, 0,2 of b
      t[8 * i + 4 + j] = _mm512_shuffle_f32x4(a, b, 0xDD);  // lanes 1,3
    }
  for (int j = 0; j < 4; ++j) {
    const __m512 a0 = t[j], a1 = t[4 + j], b0 = t[8 + j], b1 = t[12 + j];
    r[j] = _mm512_shuffle_f32x4(a0, b0, 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(a0, b0, 0xDD);
    r[4 + j] = _mm512_shuffle_f32x4(a1, b1, 0x88);
    r[12 + j] = _mm512_shuffle_f32x4(a1, b1, 0xDD);
  }
}

}  // namespace tandem::kernels
