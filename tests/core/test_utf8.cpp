// core/utf8.h against utf8proc (an independent UTF-8 implementation): every
// scalar value encodes to utf8proc's bytes and decodes back; invalid inputs
// (hand-built from the UTF-8 definition) decode to kUtf8Invalid, length 1.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include <utf8proc.h>

#include "core/utf8.h"

namespace {

using tandem::kUtf8Invalid;
using tandem::utf8_append;
using tandem::utf8_decode;
using tandem::utf8_len;

TEST(Utf8, EveryScalarValueMatchesUtf8proc) {
  for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;  // surrogates: not scalar values
    utf8proc_uint8_t ref[4];
    const auto n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), ref);
    std::string enc;
    utf8_append(enc, cp);
    ASSERT_EQ(enc, std::string(reinterpret_cast<const char*>(ref), static_cast<size_t>(n))) << std::hex << cp;
    ASSERT_EQ(utf8_len(static_cast<uint8_t>(enc[0])), enc.size()) << std::hex << cp;
    uint32_t got = 0;
    ASSERT_EQ(utf8_decode(enc, 0, &got), enc.size()) << std::hex << cp;
    ASSERT_EQ(got, cp);
    // utf8proc decodes the same bytes to the same code point.
    utf8proc_int32_t back = -1;
    ASSERT_EQ(utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(enc.data()),
                               static_cast<utf8proc_ssize_t>(enc.size()), &back),
              static_cast<utf8proc_ssize_t>(enc.size()));
    ASSERT_EQ(static_cast<uint32_t>(back), cp);
  }
}

TEST(Utf8, DecodesInTheMiddleOfAString) {
  const std::string s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";  // a é € 😀
  uint32_t cp = 0;
  EXPECT_EQ(utf8_decode(s, 0, &cp), 1u);
  EXPECT_EQ(cp, 0x61u);
  EXPECT_EQ(utf8_decode(s, 1, &cp), 2u);
  EXPECT_EQ(cp, 0xE9u);
  EXPECT_EQ(utf8_decode(s, 3, &cp), 3u);
  EXPECT_EQ(cp, 0x20ACu);
  EXPECT_EQ(utf8_decode(s, 6, &cp), 4u);
  EXPECT_EQ(cp, 0x1F600u);
}

TEST(Utf8, InvalidBytesGiveOneByteAndTheInvalidMark) {
  const std::string cases[] = {
      "\x80",          // lone continuation byte
      "\xBF",          // lone continuation byte
      "\xF8\x88\x80",  // 5-byte lead (not UTF-8)
      "\xFF",          // never in UTF-8
      "\xC3",          // 2-byte lead cut by the end
      "\xE2\x82",      // 3-byte lead cut by the end
      "\xE2\x41\xAC",  // second byte not a continuation
      "\xF0\x9F\x98",  // 4-byte lead cut by the end
      "\xF0\x9F\x98\x41",
  };
  for (const std::string& s : cases) {
    uint32_t cp = 0;
    EXPECT_EQ(utf8_decode(s, 0, &cp), 1u) << s.size();
    EXPECT_EQ(cp, kUtf8Invalid) << s.size();
  }
  EXPECT_EQ(utf8_len(0x80), 1u);
  EXPECT_EQ(utf8_len(0xF8), 1u);
}

}  // namespace
