#pragma once
// A GGUF v3 writer that streams tensor data: metadata and tensor infos are
// declared first, then each tensor's bytes are handed over one at a time, in
// declaration order, and written straight to disk. Peak memory is one tensor
// instead of the whole model (gguf::Writer holds every buffer until write()).
// The bytes produced are identical to gguf::Writer's for the same content
// (tested), including the aligned offsets and zero padding.
//
// Same safety as gguf::Writer: output goes to `<path>.tmp.<pid>` and is renamed
// into place by finish(); an abandoned or failed writer removes its temp file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "gguf/gguf.h"

namespace tandem::model {

class GgufStreamWriter {
 public:
  GgufStreamWriter() = default;
  ~GgufStreamWriter();
  GgufStreamWriter(const GgufStreamWriter&) = delete;
  GgufStreamWriter& operator=(const GgufStreamWriter&) = delete;

  // Metadata: sets or replaces (keeping its position) a key. `general.alignment`
  // (a power of two) sets the data alignment.
  void set(std::string_view key, gguf::Value value);
  void set_u32(std::string_view key, uint32_t v) { set(key, gguf::Value::u32(v)); }
  void set_f32(std::string_view key, float v) { set(key, gguf::Value::f32(v)); }
  void set_bool(std::string_view key, bool v) { set(key, gguf::Value::boolean(v)); }
  void set_string(std::string_view key, std::string v) { set(key, gguf::Value::string(std::move(v))); }
  void set_i32_array(std::string_view key, const std::vector<int32_t>& v);

  // Declares the next tensor (ggml shape order). Its byte size follows from type and shape.
  void add_tensor(std::string name, DType type, std::vector<int64_t> shape);
  size_t tensor_bytes(size_t i) const { return tensors_[i].bytes; }
  size_t n_tensors() const { return tensors_.size(); }

  // Validates the declarations, creates the temp file and writes everything up
  // to the first tensor's data.
  Status begin(const std::string& path);
  // The data of the next declared tensor (exactly tensor_bytes(i) bytes).
  Status write_tensor(const void* data, size_t bytes);
  // After the last tensor: flush, fsync, rename into place.
  Status finish();

 private:
  struct Decl {
    std::string name;
    DType type;
    std::vector<int64_t> shape;
    size_t bytes = 0;
    uint64_t offset = 0;
    bool valid = false;
  };
  Status put(const void* p, size_t n);
  Status flush();
  Status pad_to(uint64_t target);
  Status fail(Status st);  // closes + unlinks, returns st

  std::vector<std::pair<std::string, gguf::Value>> metadata_;
  std::vector<Decl> tensors_;
  size_t alignment_ = 32;
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t written_ = 0;
  uint64_t data_start_ = 0;
  size_t next_ = 0;
  std::vector<uint8_t> buf_;
};

}  // namespace tandem::model
