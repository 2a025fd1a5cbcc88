#pragma once
// Scalar IEEE half and bfloat16 conversions (the scalar twins of the F16C /
// AVX-512 BF16 paths in kernels/). Round-to-nearest-even both ways.
#include <cstdint>
#include <cstring>

namespace tandem {

inline float bits_to_f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t f32_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

inline float fp16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    // zero or subnormal: value = mant * 2^-24
    float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (exp == 31) return bits_to_f32(sign | 0x7f800000u | (mant << 13));  // inf / nan
  return bits_to_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

inline uint16_t f32_to_fp16(float f) {
  const uint32_t x = f32_to_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (ax < 0x38800000u) {
    // subnormal half (or zero): round |f| * 2^24 to nearest even integer
    float a = bits_to_f32(ax);
    float scaled = a * 16777216.0f;  // exact for these magnitudes
    uint32_t i = static_cast<uint32_t>(scaled);
    float rem = scaled - static_cast<float>(i);
    if (rem > 0.5f || (rem == 0.5f && (i & 1u))) ++i;
    return static_cast<uint16_t>(sign | i);
  }
  // normal: rebias exponent, round mantissa to 10 bits (nearest even)
  uint32_t r = ax + 0xc8000fffu + ((ax >> 13) & 1u);  // -(112<<23) + 0xfff + lsb
  return static_cast<uint16_t>(sign | (r >> 13));
}

inline float bf16_to_f32(uint16_t b) { return bits_to_f32(static_cast<uint32_t>(b) << 16); }

inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 64u);  // quiet nan
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace tandem
