#pragma once
// The 12 scale bytes of a Q4_K / Q5_K block (layout: quant_blocks.h) as one
// SSE register: bytes 0-7 = the 6-bit scales, bytes 8-15 = the 6-bit mins of
// sub-blocks 0..7. Plain integer code and SSE2 (x86-64 baseline), so every
// SIMD kernel may inline it whatever its target.
#include <emmintrin.h>

#include <cstdint>
#include <cstring>

namespace tandem::kernels {

inline __m128i k4_unpack_scales(const uint8_t* s) {
  uint32_t w[3];
  std::memcpy(w, s, 12);
  const uint32_t m6 = 0x3f3f3f3fu, m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
  const uint32_t sc_lo = w[0] & m6, mn_lo = w[1] & m6;
  const uint32_t sc_hi = (w[2] & m4) | (((w[0] >> 6) & m2) << 4);
  const uint32_t mn_hi = ((w[2] >> 4) & m4) | (((w[1] >> 6) & m2) << 4);
  return _mm_set_epi32(static_cast<int>(mn_hi), static_cast<int>(mn_lo), static_cast<int>(sc_hi),
                       static_cast<int>(sc_lo));
}

}  // namespace tandem::kernels
