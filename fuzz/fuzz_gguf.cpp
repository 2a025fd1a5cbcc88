// libFuzzer target for the GGUF reader: any bytes either parse into a fully
// validated File or give an error status. On success every value and every
// tensor byte range is touched (ASan catches any out-of-bounds pointer), and the
// file is rewritten with the Writer and re-read: the metadata and tensor bytes
// must come back identical.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/writer.h"

namespace {

using tandem::gguf::File;
using tandem::gguf::Value;

volatile uint64_t g_sink;

void touch(const Value& v) {
  uint64_t h = v.raw_bits() + static_cast<uint64_t>(v.type());
  if (v.is_string() && !v.as_string().empty()) h += static_cast<uint8_t>(v.as_string().back());
  for (const Value& item : v.items()) touch(item);
  h += v.to_string(4, 16).size();
  g_sink = g_sink + h;
}

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = File::from_bytes(std::vector<uint8_t>(data, data + size), "fuzz.gguf");
  if (!r.is_ok()) {
    check(!r.status().message().empty());
    return 0;
  }
  const File& f = **r;
  for (const auto& [key, v] : f.metadata()) {
    check(f.find(key) == &v);
    touch(v);
    // Typed getters must never misbehave whatever the stored type.
    (void)f.get_int(key);
    (void)f.get_u32(key);
    (void)f.get_f32(key);
    (void)f.get_string(key);
    (void)f.get_int_array(key);
    (void)f.get_string_array(key);
    (void)f.get_f32_array(key);
  }
  for (const auto& t : f.tensors()) {
    check(f.find_tensor(t.name) == &t);
    check(t.n_elements() > 0 && t.bytes > 0);
    const auto* p = static_cast<const uint8_t*>(t.data);
    g_sink = g_sink + p[0] + p[t.bytes - 1];
  }
  // Rewrite and re-read: same keys, values and tensor bytes.
  tandem::gguf::Writer w;
  w.copy_metadata(f);
  for (const auto& t : f.tensors()) w.add_tensor(t.name, t.type, t.shape, t.data, t.bytes);
  auto bytes = w.to_bytes();
  check(bytes.is_ok());
  auto again = File::from_bytes(std::move(bytes).value(), "rewritten.gguf");
  check(again.is_ok());
  check((*again)->metadata() == f.metadata());
  check((*again)->tensors().size() == f.tensors().size());
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto& a = f.tensors()[i];
    const auto& b = (*again)->tensors()[i];
    check(a.name == b.name && a.type == b.type && a.shape == b.shape && a.bytes == b.bytes);
    check(std::memcmp(a.data, b.data, a.bytes) == 0);
  }
  return 0;
}
