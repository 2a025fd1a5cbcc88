#pragma once
// The 12 scale bytes of a Q4_K / Q5_K block (layout: quant_blocks.h) as one
// SSE register: bytes 0-7 = the 6-bit scales, bytes 8-15 = the 6-bit mins of
// sub-blocks 0..7. AVX2 target, so the SIMD kernels (AVX2 and AVX-512) may
// inline it; the scalar twins unpack with k4_scale_min (quant_blocks.h).
// Kernel .cpp files only (it includes simd_target.h).
#include "kernels/simd_target.h"  // first: target attributes, GCC 12 warning workaround
#include <immintrin.h>

namespace tandem::kernels {

// block: the start of a BlockQ4_K or BlockQ5_K. Its first 16 bytes, as 32-bit
// lanes, are [d|dmin, w0, w1, w2] with w the scale bytes:
//   scales 0-3 = w0 & 0x3f..,                 mins 0-3 = w1 & 0x3f..
//   scales 4-7 = (w2 & 0x0f..) | ((w0 >> 6) & 3) << 4 per byte
//   mins   4-7 = ((w2 >> 4) & 0x0f..) | ((w1 >> 6) & 3) << 4 per byte
// Vector operations only: the general-register form (four 32-bit values
// inserted lane by lane) held the decode GEMV to 3/4 of its speed (session 8,
// bench_kernels Gemv/q4_k 44 -> 55 GB/s).
TANDEM_TARGET_AVX2 inline __m128i k4_unpack_scales(const void* block) {
  const __m128i head = _mm_loadu_si128(static_cast<const __m128i*>(block));
  const __m128i y = _mm_shuffle_epi32(head, 0xED);  // [w0, w2, w1, w2]
  const __m128i z = _mm_shuffle_epi32(head, 0xA5);  // [w0, w0, w1, w1]
  const __m128i lo = _mm_and_si128(_mm_srlv_epi32(y, _mm_set_epi32(4, 0, 0, 0)),
                                   _mm_set_epi32(0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f));
  // bits 6-7 of each byte moved to bits 4-5 of the same byte
  const __m128i hi = _mm_and_si128(_mm_srli_epi32(z, 2), _mm_set_epi32(0x30303030, 0, 0x30303030, 0));
  return _mm_or_si128(lo, hi);
}

}  // namespace tandem::kernels
