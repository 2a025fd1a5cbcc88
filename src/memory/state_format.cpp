#include "memory/state_format.h"

#include <array>

namespace tandem::memory::state {

namespace {
std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}
}  // namespace

uint32_t crc32(const uint8_t* data, size_t n) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ data[i]) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint64_t fnv1a(const void* data, size_t n, uint64_t h) {
  const auto* b = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= b[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

FileBuilder::FileBuilder(uint32_t kind, uint64_t geometry, std::string_view fingerprint)
    : kind_(kind), geometry_(geometry), fingerprint_(fingerprint) {}

void FileBuilder::section(uint32_t t, const std::vector<uint8_t>& payload) { sections_.emplace_back(t, payload); }

std::vector<uint8_t> FileBuilder::finish() {
  std::vector<uint8_t> out;
  Writer w(out);
  w.bytes(kMagic, sizeof(kMagic));
  w.put<uint32_t>(kVersion);
  w.put<uint32_t>(kind_);
  w.put<uint64_t>(geometry_);
  w.put<uint32_t>(static_cast<uint32_t>(fingerprint_.size()));
  w.bytes(fingerprint_.data(), fingerprint_.size());
  w.put<uint32_t>(static_cast<uint32_t>(sections_.size()));
  w.put<uint32_t>(crc32(out.data(), out.size()));
  for (const auto& [t, payload] : sections_) {
    w.put<uint32_t>(t);
    w.put<uint64_t>(payload.size());
    w.put<uint32_t>(crc32(payload.data(), payload.size()));
    w.bytes(payload.data(), payload.size());
  }
  return out;
}

Result<ParsedFile> parse_file(std::span<const uint8_t> bytes, uint32_t expected_kind, uint64_t geometry,
                              std::string_view fingerprint) {
  Reader r(bytes);
  std::span<const uint8_t> magic;
  if (!r.view(sizeof(kMagic), magic) || std::memcmp(magic.data(), kMagic, sizeof(kMagic)) != 0)
    return TANDEM_ERR(kCorrupt, "memory state: not a Tandem memory state file (bad magic)");
  uint32_t version = 0, kind = 0, fp_len = 0, n_sections = 0, hcrc = 0;
  uint64_t geo = 0;
  if (!r.get(version)) return TANDEM_ERR(kCorrupt, "memory state: truncated header");
  if (version != kVersion)
    return TANDEM_ERR(kUnsupported, "memory state: file version {} (this build reads version {})", version, kVersion);
  if (!r.get(kind) || !r.get(geo) || !r.get(fp_len)) return TANDEM_ERR(kCorrupt, "memory state: truncated header");
  std::span<const uint8_t> fp;
  if (!r.view(fp_len, fp) || !r.get(n_sections))
    return TANDEM_ERR(kCorrupt, "memory state: truncated header (fingerprint of {} bytes)", fp_len);
  const size_t header_len = r.offset();
  if (!r.get(hcrc)) return TANDEM_ERR(kCorrupt, "memory state: truncated header");
  if (crc32(bytes.data(), header_len) != hcrc) return TANDEM_ERR(kCorrupt, "memory state: header checksum mismatch");
  if (kind != expected_kind)
    return TANDEM_ERR(kInvalidArgument, "memory state: file holds {} but {} was requested",
                      kind == kKindWhole ? "a whole memory" : "one sequence",
                      expected_kind == kKindWhole ? "a whole memory" : "one sequence");
  if (std::string_view(reinterpret_cast<const char*>(fp.data()), fp.size()) != fingerprint)
    return TANDEM_ERR(kInvalidArgument, "memory state: file was saved for another model (fingerprint mismatch)");
  if (geo != geometry)
    return TANDEM_ERR(kInvalidArgument,
                      "memory state: layer memory layout differs from this memory (layer specs or KV type)");
  ParsedFile pf;
  pf.kind = kind;
  for (uint32_t i = 0; i < n_sections; ++i) {
    uint32_t t = 0, crc = 0;
    uint64_t len = 0;
    if (!r.get(t) || !r.get(len) || !r.get(crc))
      return TANDEM_ERR(kCorrupt, "memory state: truncated in the header of section {} of {}", i, n_sections);
    std::span<const uint8_t> payload;
    if (len > r.remaining() || !r.view(static_cast<size_t>(len), payload))
      return TANDEM_ERR(kCorrupt, "memory state: section {} claims {} bytes, only {} remain (truncated file)", i,
                        len, r.remaining());
    if (crc32(payload.data(), payload.size()) != crc)
      return TANDEM_ERR(kCorrupt, "memory state: checksum mismatch in section {} (tag {:08x})", i, t);
    pf.sections.emplace_back(t, payload);
  }
  if (r.remaining() != 0)
    return TANDEM_ERR(kCorrupt, "memory state: {} unexpected bytes after the last section", r.remaining());
  return pf;
}

}  // namespace tandem::memory::state
