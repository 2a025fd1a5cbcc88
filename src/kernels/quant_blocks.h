#pragma once
// GGUF/ggml quantization block layouts (byte-exact; field order as in the
// files). Scales marked "f16" are IEEE half bits. QK_K super-blocks hold 256.
#include <cstdint>

namespace tandem::kernels {

inline constexpr int kQK = 32;    // elements per block of the _0/_1 types
inline constexpr int kQKK = 256;  // elements per K-quant super-block

struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };                   // x = (q - 8) * d
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };                // x = q * d + m
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };    // 5th bits in qh
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };
struct BlockQ8_1 { uint16_t d, s; int8_t qs[32]; };                 // s = d * sum(qs)
// Q2_K: 16 sub-blocks of 16; scales[j] = scale(4 bits) | min(4 bits) << 4.
struct BlockQ2_K { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; };
// Q3_K: 16 sub-blocks of 16, 6-bit signed scales packed in 12 bytes, high bit in hmask.
struct BlockQ3_K { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; };
// Q4_K / Q5_K: 8 sub-blocks of 32, 6-bit scales and mins packed in 12 bytes.
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
// Q6_K: 16 sub-blocks of 16, int8 scales; low 4 bits in ql, high 2 in qh.
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
// Q8_K: activations for K-quant dots; bsums = sums of each 16 quants.
struct BlockQ8_K { float d; int8_t qs[256]; int16_t bsums[16]; };

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292);

// 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block.
inline void k4_scale_min(int j, const uint8_t* s, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// The 16 signed 6-bit scales of a Q3_K block (already minus 32).
inline void q3k_scales(const uint8_t* s, int8_t out[16]) {
  for (int j = 0; j < 16; ++j) {
    int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = static_cast<int8_t>((lo | (hi << 4)) - 32);
  }
}

// Round to nearest, ties to even (the float magic-number trick ggml uses).
inline int nearest_int(float f) {
  float v = f + 12582912.f;
  int i;
  __builtin_memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

}  // namespace tandem::kernels
