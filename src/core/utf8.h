#pragma once
// UTF-8 encoding and decoding of one code point, shared by the tokenizer
// (pre-tokenizer, byte-level alphabet, SPM pieces) and the grammar code
// (GBNF parser, JSON-schema → GBNF).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tandem {

// Byte length of a UTF-8 sequence from its lead byte (1 for invalid leads:
// continuation bytes and 0xF8..0xFF).
inline size_t utf8_len(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

// The code point that an invalid byte decodes to (never a valid result: four
// bytes hold at most 21 bits).
inline constexpr uint32_t kUtf8Invalid = 0xFFFFFFFFu;

// Decodes one UTF-8 code point at s[i] (i < s.size()); returns its length.
// An invalid lead byte, a sequence cut by the end of s or a bad continuation
// byte gives length 1 and *cp = kUtf8Invalid. Overlong forms are not checked.
inline size_t utf8_decode(std::string_view s, size_t i, uint32_t* cp) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const uint8_t c = p[i];
  const size_t n = utf8_len(c);
  if (n == 1) {
    *cp = c < 0x80 ? c : kUtf8Invalid;
    return 1;
  }
  if (i + n > s.size()) {
    *cp = kUtf8Invalid;
    return 1;
  }
  uint32_t v = c & (0x7Fu >> n);  // payload bits of the lead byte
  for (size_t k = 1; k < n; ++k) {
    if ((p[i + k] & 0xC0) != 0x80) {
      *cp = kUtf8Invalid;
      return 1;
    }
    v = (v << 6) | (p[i + k] & 0x3Fu);
  }
  *cp = v;
  return n;
}

// Appends the UTF-8 encoding of cp (1 to 4 bytes) to out.
inline void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace tandem
