#include <gtest/gtest.h>

#include <cmath>

#include "core/fp16.h"

namespace tandem {
namespace {

// Independent truth: the compiler's own _Float16 conversion (round to nearest even).
TEST(Fp16, MatchesCompilerConversionForEveryHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    _Float16 ref;
    uint16_t hb = static_cast<uint16_t>(h);
    std::memcpy(&ref, &hb, 2);
    float f = fp16_to_f32(hb);
    float r = static_cast<float>(ref);
    if (std::isnan(r)) {
      EXPECT_TRUE(std::isnan(f));
      continue;
    }
    ASSERT_EQ(f32_to_bits(f), f32_to_bits(r)) << h;
    ASSERT_EQ(f32_to_fp16(f), hb) << h;  // round trip of every representable value
  }
}

TEST(Fp16, RoundsLikeCompilerOnRandomFloats) {
  uint32_t s = 12345;
  for (int i = 0; i < 200000; ++i) {
    s = s * 1664525u + 1013904223u;
    float f = bits_to_f32(s);
    if (std::isnan(f)) continue;
    _Float16 ref = static_cast<_Float16>(f);
    uint16_t rb;
    std::memcpy(&rb, &ref, 2);
    ASSERT_EQ(f32_to_fp16(f), rb) << f;
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
