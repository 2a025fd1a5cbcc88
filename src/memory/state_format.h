#pragma once
// Byte-level helpers for memory state files: CRC-32 (IEEE 802.3, reflected
// polynomial 0xEDB88320), FNV-1a 64, a little-endian writer and a bounds-checked
// reader. The host is assumed little endian (x86-64 / aarch64), so plain
// memcpy gives the on-disk byte order.
//
// File layout (all integers little endian):
//   header:  "TNDMSTAT" | u32 version | u32 kind (1 whole, 2 sequence)
//            | u64 geometry hash | u32 fingerprint length | fingerprint bytes
//            | u32 section count | u32 crc32(header bytes before this field)
//   section: u32 tag | u64 payload length | u32 crc32(payload) | payload
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tandem::memory::state {

inline constexpr char kMagic[8] = {'T', 'N', 'D', 'M', 'S', 'T', 'A', 'T'};
inline constexpr uint32_t kVersion = 1;
inline constexpr uint32_t kKindWhole = 1;
inline constexpr uint32_t kKindSeq = 2;

constexpr uint32_t tag(const char (&s)[5]) {
  return uint32_t(uint8_t(s[0])) | uint32_t(uint8_t(s[1])) << 8 | uint32_t(uint8_t(s[2])) << 16 |
         uint32_t(uint8_t(s[3])) << 24;
}

uint32_t crc32(const uint8_t* data, size_t n);
uint64_t fnv1a(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull);

class Writer {
 public:
  explicit Writer(std::vector<uint8_t>& out) : out_(out) {}
  void bytes(const void* p, size_t n) {
    if (n == 0) return;
    const size_t old = out_.size();
    out_.resize(old + n);
    std::memcpy(out_.data() + old, p, n);
  }
  template <typename T> void put(T v) { bytes(&v, sizeof(T)); }
  size_t size() const { return out_.size(); }
  std::vector<uint8_t>& buffer() { return out_; }

 private:
  std::vector<uint8_t>& out_;
};

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}
  bool has(size_t n) const { return n <= in_.size() - off_; }
  template <typename T> bool get(T& v) {
    if (!has(sizeof(T))) return false;
    std::memcpy(&v, in_.data() + off_, sizeof(T));
    off_ += sizeof(T);
    return true;
  }
  // A view of the next n bytes (no copy).
  bool view(size_t n, std::span<const uint8_t>& out) {
    if (!has(n)) return false;
    out = in_.subspan(off_, n);
    off_ += n;
    return true;
  }
  size_t offset() const { return off_; }
  size_t remaining() const { return in_.size() - off_; }

 private:
  std::span<const uint8_t> in_;
  size_t off_ = 0;
};

// Builds header + sections.
class FileBuilder {
 public:
  FileBuilder(uint32_t kind, uint64_t geometry, std::string_view fingerprint);
  // Appends a section; `payload` is filled by the caller through the returned buffer.
  void section(uint32_t tag, const std::vector<uint8_t>& payload);
  std::vector<uint8_t> finish();

 private:
  uint32_t kind_;
  uint64_t geometry_;
  std::string fingerprint_;
  std::vector<std::pair<uint32_t, std::vector<uint8_t>>> sections_;
};

struct ParsedFile {
  uint32_t kind = 0;
  std::vector<std::pair<uint32_t, std::span<const uint8_t>>> sections;
  const std::span<const uint8_t>* find(uint32_t tag) const {
    for (const auto& s : sections)
      if (s.first == tag) return &s.second;
    return nullptr;
  }
};

// Checks magic, version, kind, geometry, fingerprint, header and section
// checksums and that the sections exactly fill the input. Names the cause.
Result<ParsedFile> parse_file(std::span<const uint8_t> bytes, uint32_t expected_kind, uint64_t geometry,
                              std::string_view fingerprint);

}  // namespace tandem::memory::state
