#pragma once
// Test helper: builds GGUF bytes by hand, field by field, independently of the
// writer, so tests can make valid files and every kind of broken one.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::gguf::testing {

struct Bytes {
  std::vector<uint8_t> b;

  size_t pos() const { return b.size(); }
  Bytes& raw(const void* p, size_t n) {
    const uint8_t* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
    return *this;
  }
  Bytes& le(uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  Bytes& u8(uint8_t v) { return le(v, 1); }
  Bytes& u32(uint32_t v) { return le(v, 4); }
  Bytes& u64(uint64_t v) { return le(v, 8); }
  Bytes& f32(float v) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    return u32(u);
  }
  Bytes& str(std::string_view s) {
    u64(s.size());
    return raw(s.data(), s.size());
  }
  // "GGUF", version, n_tensors, n_kv.
  Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    raw("GGUF", 4);
    u32(version);
    u64(n_tensors);
    return u64(n_kv);
  }
  // key + type id (the caller appends the value).
  Bytes& key(std::string_view k, uint32_t type) {
    str(k);
    return u32(type);
  }
  Bytes& kv_u32(std::string_view k, uint32_t v) { return key(k, 4).u32(v); }
  Bytes& kv_str(std::string_view k, std::string_view v) { return key(k, 8).str(v); }
  // Tensor info: name, dims (ggml order), type id, data offset.
  Bytes& tensor(std::string_view name, const std::vector<uint64_t>& dims, uint32_t type,
                uint64_t offset) {
    str(name);
    u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    u32(type);
    return u64(offset);
  }
  Bytes& pad_to(size_t alignment) {
    while (b.size() % alignment) b.push_back(0);
    return *this;
  }
  Bytes& fill(size_t n, uint8_t v) {
    b.insert(b.end(), n, v);
    return *this;
  }
};

}  // namespace tandem::gguf::testing
