#pragma once
// GGUF reader: parses and fully validates a GGUF v2/v3 file before anything is
// used. Metadata is decoded into Values; tensor data stays in the mmap (zero
// copies) and TensorInfo::data points into it for as long as the File lives.
//
// File layout (all little endian):
//   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x { string key | u32 value type | value }
//   n_tensors x { string name | u32 n_dims | n_dims x u64 ne | u32 type | u64 offset }
//   padding to `general.alignment` | data section (tensor offsets are relative to it)
// string = u64 length + bytes; array = u32 elem type + u64 count + elements.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace tandem::gguf {

enum class ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12
};

// "u8", "string", "array", ... ("?" for ids outside the enum).
std::string_view value_type_name(ValueType t);
bool value_type_is_integer(ValueType t);
bool value_type_is_signed(ValueType t);

// A metadata value: scalar, string, or array (arrays may nest).
class Value {
 public:
  Value() = default;
  // Scalars. The stored type is exactly the one given.
  static Value u8(uint8_t v) { return make_uint(ValueType::kU8, v); }
  static Value i8(int8_t v) { return make_int(ValueType::kI8, v); }
  static Value u16(uint16_t v) { return make_uint(ValueType::kU16, v); }
  static Value i16(int16_t v) { return make_int(ValueType::kI16, v); }
  static Value u32(uint32_t v) { return make_uint(ValueType::kU32, v); }
  static Value i32(int32_t v) { return make_int(ValueType::kI32, v); }
  static Value u64(uint64_t v) { return make_uint(ValueType::kU64, v); }
  static Value i64(int64_t v) { return make_int(ValueType::kI64, v); }
  static Value f32(float v);
  static Value f64(double v);
  static Value boolean(bool v);
  static Value string(std::string v);
  // An array whose elements all have type `elem` (every item must match it).
  static Value array(ValueType elem, std::vector<Value> items);

  ValueType type() const { return type_; }
  bool is_integer() const { return value_type_is_integer(type_); }
  bool is_float() const { return type_ == ValueType::kF32 || type_ == ValueType::kF64; }
  bool is_string() const { return type_ == ValueType::kString; }
  bool is_array() const { return type_ == ValueType::kArray; }

  // Scalar accessors. Calling one on a value of a different kind returns 0 / ""
  // (use type() first, or the checked File getters).
  uint64_t as_u64() const;   // integer types; signed values reinterpret two's complement
  int64_t as_i64() const;    // integer types; u64 above INT64_MAX wraps (check fits_i64)
  bool fits_i64() const;     // integer whose value is representable as int64_t
  double as_f64() const;     // f32/f64 (and integers, converted)
  bool as_bool() const { return type_ == ValueType::kBool && bits_ != 0; }
  std::string_view as_string() const { return str_; }
  // Raw payload of a scalar: integer bits (sign-extended), bool 0/1, float/double
  // bit pattern (exact, NaN payloads included).
  uint64_t raw_bits() const { return bits_; }

  // Arrays: element type, length, items (which may themselves be arrays).
  ValueType elem_type() const { return elem_type_; }
  size_t size() const { return items_.size(); }
  const Value& at(size_t i) const { return items_.at(i); }
  const std::vector<Value>& items() const { return items_; }

  // Deep equality (type, element type, payload); floats compare bitwise.
  bool operator==(const Value& o) const;

  // Short human-readable rendering ("42", "\"llama\"", "[1, 2, ... (100 items)]").
  std::string to_string(size_t max_items = 8, size_t max_chars = 64) const;

 private:
  static Value make_uint(ValueType t, uint64_t v) {
    Value r;
    r.type_ = t;
    r.bits_ = v;
    return r;
  }
  static Value make_int(ValueType t, int64_t v) {
    Value r;
    r.type_ = t;
    r.bits_ = static_cast<uint64_t>(v);
    return r;
  }

  ValueType type_ = ValueType::kU8;
  ValueType elem_type_ = ValueType::kU8;  // arrays only
  uint64_t bits_ = 0;                     // integers (sign-extended), bool, float/double bits
  std::string str_;                       // strings
  std::vector<Value> items_;              // arrays
};

struct TensorInfo {
  std::string name;
  DType type = DType::F32;
  std::vector<int64_t> shape;   // ggml order: shape[0] = ne0 = innermost (row length)
  uint64_t offset = 0;          // relative to the data section
  size_t bytes = 0;
  const void* data = nullptr;   // into the mmap, valid while the File lives
  int64_t n_elements() const;
};

// Limits applied while parsing (generous for real models, small enough that
// hostile headers cannot make us allocate or recurse without bound).
inline constexpr int kMaxArrayDepth = 8;        // nested array levels
inline constexpr uint32_t kMaxDims = 4;

// Hash for unordered_map<std::string, ...> lookups by string_view without a copy.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class File {
 public:
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // How open() holds the file's bytes. kMmap: a read-only mapping of the file
  // (no copy, shares the page cache). kRead: the bytes are read into anonymous
  // memory advised for transparent huge pages (MADV_HUGEPAGE): a copy and a
  // slower load, but weights streamed through 2 MiB pages instead of 4 KiB
  // ones decode up to 1.5x faster on large models (docs/benchmarks.md).
  // kAuto: kRead when the file takes at most half of the memory available now
  // (so the copy leaves room for the KV cache, the state and the page cache),
  // else kMmap.
  enum class Load { kMmap, kRead, kAuto };
  // What kAuto becomes for a file of `file_size` bytes with `available` bytes
  // of memory available (other values are returned as they are).
  static Load resolve_load(Load how, size_t file_size, size_t available);
  // Memory available to this process now: MemAvailable from /proc/meminfo,
  // else free physical pages; 0 when neither can be read.
  static size_t available_memory();
  // mmap (or read) + full validation. Errors name the path, the byte offset and the problem.
  static Result<std::unique_ptr<File>> open(const std::string& path, Load how = Load::kMmap);
  // Same validation on bytes held in memory (tests, fuzzing); `name` is used in errors.
  static Result<std::unique_ptr<File>> from_bytes(std::vector<uint8_t> bytes, std::string name);

  uint32_t version() const { return version_; }
  // True when open() read the file into memory (Load::kRead).
  bool read_into_memory() const { return read_into_memory_; }
  const std::string& path() const { return path_; }
  size_t file_size() const { return size_; }
  size_t alignment() const { return alignment_; }
  size_t data_offset() const { return data_offset_; }  // start of the data section in the file
  const uint8_t* raw_bytes() const { return base_; }    // the whole file (file_size() bytes)

  const std::vector<std::pair<std::string, Value>>& metadata() const { return metadata_; }  // file order
  const Value* find(std::string_view key) const;

  // Typed getters; errors name the key and say missing / wrong type.
  Result<std::string> get_string(std::string_view key) const;
  Result<int64_t> get_int(std::string_view key) const;      // any integer type
  Result<uint32_t> get_u32(std::string_view key) const;     // any integer type that fits
  Result<float> get_f32(std::string_view key) const;        // f32 or f64
  Result<bool> get_bool(std::string_view key) const;
  Result<std::vector<std::string>> get_string_array(std::string_view key) const;
  Result<std::vector<int64_t>> get_int_array(std::string_view key) const;
  Result<std::vector<float>> get_f32_array(std::string_view key) const;

  // Value if present, else `def`; a present value of the wrong type is still an error.
  Result<int64_t> get_int_or(std::string_view key, int64_t def) const;
  Result<uint32_t> get_u32_or(std::string_view key, uint32_t def) const;
  Result<float> get_f32_or(std::string_view key, float def) const;
  Result<bool> get_bool_or(std::string_view key, bool def) const;
  Result<std::string> get_string_or(std::string_view key, std::string def) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;

 private:
  File() = default;
  friend class Parser;
  static Result<std::unique_ptr<File>> parse(std::unique_ptr<File> f);

  std::string path_;
  uint32_t version_ = 0;
  size_t size_ = 0;
  size_t alignment_ = 32;
  size_t data_offset_ = 0;
  const uint8_t* base_ = nullptr;     // whole file: mmap or bytes_.data()
  void* map_ = nullptr;               // mmap base: the file's or the anonymous one (nullptr for from_bytes)
  bool read_into_memory_ = false;     // map_ is anonymous memory holding a copy (Load::kRead)
  std::vector<uint8_t> bytes_;        // from_bytes storage
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t, StringHash, std::equal_to<>> key_index_;
  std::unordered_map<std::string, size_t, StringHash, std::equal_to<>> tensor_index_;
};

}  // namespace tandem::gguf
