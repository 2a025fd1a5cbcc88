#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <cpuid.h>
#include <immintrin.h>

#include "core/fp16.h"

namespace tandem {
namespace {

// Independent truth: the compiler's own _Float16 conversions (round to nearest
// even), or, under clang before 15 (no _Float16 on plain x86-64; the tests
// built with the fuzzers' clang-14), the F16C instructions, which round the same way.
#if defined(__clang__) && __clang_major__ < 15
__attribute__((target("f16c"))) float ref_half_to_float(uint16_t h) { return _cvtsh_ss(h); }
__attribute__((target("f16c"))) uint16_t ref_float_to_half(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}
bool have_reference() {  // CPUID leaf 1, ECX bit 29
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
}
#else
float ref_half_to_float(uint16_t h) {
  _Float16 r;
  std::memcpy(&r, &h, 2);
  return static_cast<float>(r);
}
uint16_t ref_float_to_half(float f) {
  const _Float16 r = static_cast<_Float16>(f);
  uint16_t b;
  std::memcpy(&b, &r, 2);
  return b;
}
bool have_reference() { return true; }
#endif

TEST(Fp16, MatchesCompilerConversionForEveryHalf) {
  if (!have_reference()) GTEST_SKIP() << "no F16C on this CPU for the clang < 15 reference";
  for (uint32_t h = 0; h < 65536; ++h) {
    uint16_t hb = static_cast<uint16_t>(h);
    float f = fp16_to_f32(hb);
    float r = ref_half_to_float(hb);
    if (std::isnan(r)) {
      EXPECT_TRUE(std::isnan(f));
      continue;
    }
    ASSERT_EQ(f32_to_bits(f), f32_to_bits(r)) << h;
    ASSERT_EQ(f32_to_fp16(f), hb) << h;  // round trip of every representable value
  }
}

TEST(Fp16, RoundsLikeCompilerOnRandomFloats) {
  if (!have_reference()) GTEST_SKIP() << "no F16C on this CPU for the clang < 15 reference";
  uint32_t s = 12345;
  for (int i = 0; i < 200000; ++i) {
    s = s * 1664525u + 1013904223u;
    float f = bits_to_f32(s);
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_fp16(f), ref_float_to_half(f)) << f;
  }
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f808000u)), 0x3f80);  // tie → even
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f818000u)), 0x3f82);  // tie → even (up)
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f808001u)), 0x3f81);
  EXPECT_EQ(bf16_to_f32(0xbf80), -1.0f);
}

}  // namespace
}  // namespace tandem
