#pragma once
// GGUF v3 writer: metadata of every type (incl. nested arrays) and tensors laid
// out at `general.alignment`. write() goes to a temporary file in the target's
// directory and renames it into place, so a failure never leaves half a file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "gguf/gguf.h"

namespace tandem::gguf {

namespace detail {
class Sink;
}

class Writer {
 public:
  Writer() = default;

  // Sets (or replaces, keeping its position) a metadata key.
  void set(std::string_view key, Value value);
  void set_u8(std::string_view key, uint8_t v) { set(key, Value::u8(v)); }
  void set_i8(std::string_view key, int8_t v) { set(key, Value::i8(v)); }
  void set_u16(std::string_view key, uint16_t v) { set(key, Value::u16(v)); }
  void set_i16(std::string_view key, int16_t v) { set(key, Value::i16(v)); }
  void set_u32(std::string_view key, uint32_t v) { set(key, Value::u32(v)); }
  void set_i32(std::string_view key, int32_t v) { set(key, Value::i32(v)); }
  void set_u64(std::string_view key, uint64_t v) { set(key, Value::u64(v)); }
  void set_i64(std::string_view key, int64_t v) { set(key, Value::i64(v)); }
  void set_f32(std::string_view key, float v) { set(key, Value::f32(v)); }
  void set_f64(std::string_view key, double v) { set(key, Value::f64(v)); }
  void set_bool(std::string_view key, bool v) { set(key, Value::boolean(v)); }
  void set_string(std::string_view key, std::string v) { set(key, Value::string(std::move(v))); }
  void set_string_array(std::string_view key, const std::vector<std::string>& v);
  void set_i32_array(std::string_view key, const std::vector<int32_t>& v);
  void set_u32_array(std::string_view key, const std::vector<uint32_t>& v);
  void set_i64_array(std::string_view key, const std::vector<int64_t>& v);
  void set_f32_array(std::string_view key, const std::vector<float>& v);
  void set_bool_array(std::string_view key, const std::vector<bool>& v);
  // Every key/value of an existing file (e.g. to rewrite it with changes).
  void copy_metadata(const File& f);

  // `general.alignment` (power of two); also written as that key (u32) when not 32.
  void set_alignment(size_t alignment);

  // Registers a tensor. `data` must stay valid until write() returns (it is not
  // copied); `bytes` must equal the size implied by type and shape (checked in write()).
  // shape is in ggml order (shape[0] = row length).
  void add_tensor(std::string name, DType type, std::vector<int64_t> shape, const void* data,
                  size_t bytes);

  // Validates everything, then writes to `<path>.tmp.<pid>` and renames it to `path`.
  Status write(const std::string& path) const;
  // The exact bytes write() would produce (tests, in-memory round trips).
  Result<std::vector<uint8_t>> to_bytes() const;

 private:
  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<int64_t> shape;
    const void* data;
    size_t bytes;
  };
  // Checks keys, values and tensors; returns the alignment to use.
  Result<size_t> validate() const;
  Status emit(detail::Sink& sink, size_t alignment) const;

  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<PendingTensor> tensors_;
  size_t alignment_ = 32;
};

}  // namespace tandem::gguf
