// GGUF parsing and validation. Every length, count and offset read from the
// file is checked against the bytes that remain before it is used, so no input
// can make the parser read out of bounds, recurse without limit or allocate
// more than a small multiple of the file size.
#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "gguf/gguf.h"

namespace tandem::gguf {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian u32
// Smallest encodings, used to bound counts by the bytes left in the file:
// a key/value pair is at least key length (8) + type (4) + 1 byte of value;
// a tensor info at least name length (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
constexpr size_t kMinKvBytes = 8 + 4 + 1;
constexpr size_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;
// Total array elements decoded from one file (each becomes a Value in memory).
constexpr uint64_t kMaxTotalArrayItems = uint64_t{1} << 24;
constexpr size_t kMaxAlignment = size_t{1} << 30;

// Size in the file of a fixed-size scalar type; 0 for string/array/unknown.
size_t scalar_size(uint32_t t) {
  switch (static_cast<ValueType>(t)) {
    case ValueType::kU8: case ValueType::kI8: case ValueType::kBool: return 1;
    case ValueType::kU16: case ValueType::kI16: return 2;
    case ValueType::kU32: case ValueType::kI32: case ValueType::kF32: return 4;
    case ValueType::kU64: case ValueType::kI64: case ValueType::kF64: return 8;
    default: return 0;
  }
}

bool known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::kF64); }

uint64_t load_le(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

// A printable rendering of a short byte string for error messages.
std::string printable(const uint8_t* p, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = p[i];
    if (c >= 0x20 && c < 0x7f && c != '\\') s += static_cast<char>(c);
    else s += fmt::format("\\x{:02x}", c);
  }
  return s;
}

}  // namespace

class Parser {
 public:
  explicit Parser(File& f) : f_(f), p_(f.base_), size_(f.size_) {}

  Status run() {
    TANDEM_TRY(header());
    TANDEM_TRY(metadata());
    TANDEM_TRY(alignment());
    TANDEM_TRY(tensor_infos());
    return tensor_data();
  }

 private:
  size_t remaining() const { return size_ - pos_; }

  template <typename... Args>
  Status fail(size_t at, fmt::format_string<Args...> what, Args&&... args) {
    return Status(StatusCode::kCorrupt, fmt::format("{}: byte {}: {}", f_.path_, at,
                                                    fmt::format(what, std::forward<Args>(args)...)));
  }

  // `what` describes the field for error messages: a string literal, or a
  // callable returning std::string (only called when there is an error, so the
  // hot loops over vocabulary arrays never format anything).
  static std::string describe(const char* what) { return what; }
  template <typename F>
  static std::string describe(const F& what) {
    return what();
  }

  template <typename D>
  Status need(size_t n, const D& what) {
    if (remaining() < n)
      return fail(pos_, "file truncated: {} needs {} bytes but only {} remain", describe(what), n,
                  remaining());
    return Status::ok();
  }

  template <typename D>
  Status u32(uint32_t& out, const D& what) {
    TANDEM_TRY(need(4, what));
    out = static_cast<uint32_t>(load_le(p_ + pos_, 4));
    pos_ += 4;
    return Status::ok();
  }

  template <typename D>
  Status u64(uint64_t& out, const D& what) {
    TANDEM_TRY(need(8, what));
    out = load_le(p_ + pos_, 8);
    pos_ += 8;
    return Status::ok();
  }

  template <typename D>
  Status str(std::string& out, const D& what) {
    size_t at = pos_;
    uint64_t len = 0;
    TANDEM_TRY(u64(len, what));
    if (len > remaining())
      return fail(at, "{} length {} runs past the end of the file ({} bytes remain)", describe(what),
                  len, remaining());
    out.assign(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return Status::ok();
  }

  Status header() {
    if (size_ < 4) return fail(0, "file truncated: {} bytes is too short for a GGUF header", size_);
    uint32_t magic = static_cast<uint32_t>(load_le(p_, 4));
    if (magic != kMagic)
      return fail(0, "bad magic '{}' (expected 'GGUF'; not a GGUF file)", printable(p_, 4));
    pos_ = 4;
    TANDEM_TRY(u32(f_.version_, "version"));
    if (f_.version_ == 1)
      return Status(StatusCode::kUnsupported,
                    fmt::format("{}: byte 4: GGUF version 1 is not supported (only versions 2 and 3; "
                                "re-convert the model with a current converter)",
                                f_.path_));
    if (f_.version_ != 2 && f_.version_ != 3) {
      bool swapped = (f_.version_ & 0xffff) == 0 && f_.version_ != 0;
      return fail(4, "unsupported GGUF version {}{} (supported: 2, 3)", f_.version_,
                  swapped ? " (looks like a big-endian file)" : "");
    }
    TANDEM_TRY(u64(n_tensors_, "tensor count"));
    TANDEM_TRY(u64(n_kv_, "metadata count"));
    if (n_kv_ > remaining() / kMinKvBytes)
      return fail(16, "metadata count {} cannot fit in the {} bytes that remain", n_kv_, remaining());
    if (n_tensors_ > remaining() / kMinTensorInfoBytes)
      return fail(8, "tensor count {} cannot fit in the {} bytes that remain", n_tensors_,
                  remaining());
    return Status::ok();
  }

  Status metadata() {
    f_.metadata_.reserve(static_cast<size_t>(n_kv_));
    std::unordered_map<std::string, size_t> first_at;  // key -> byte offset of its first occurrence
    for (uint64_t i = 0; i < n_kv_; ++i) {
      size_t at = pos_;
      std::string key;
      TANDEM_TRY(str(key, [&] { return fmt::format("metadata key #{}", i); }));
      if (key.empty()) return fail(at, "metadata key #{} is empty", i);
      auto [it, inserted] = first_at.emplace(key, at);
      if (!inserted)
        return fail(at, "duplicate metadata key '{}' (first defined at byte {})", key, it->second);
      size_t type_at = pos_;
      uint32_t type = 0;
      TANDEM_TRY(u32(type, [&] { return fmt::format("type of metadata key '{}'", key); }));
      Value v;
      TANDEM_TRY(value(type, type_at, key, 0, v));
      f_.metadata_.emplace_back(std::move(key), std::move(v));
    }
    return Status::ok();
  }

  // Reads one value of type `type` (already read, found at byte `type_at`).
  Status value(uint32_t type, size_t type_at, const std::string& key, int depth, Value& out) {
    if (!known_value_type(type))
      return fail(type_at, "metadata key '{}': unknown value type id {}", key, type);
    size_t at = pos_;
    switch (static_cast<ValueType>(type)) {
      case ValueType::kString: {
        std::string s;
        TANDEM_TRY(str(s, [&] { return fmt::format("string value of '{}'", key); }));
        out = Value::string(std::move(s));
        return Status::ok();
      }
      case ValueType::kArray:
        return array(key, depth, out);
      default:
        break;
    }
    size_t n = scalar_size(type);
    TANDEM_TRY(need(n, [&] { return fmt::format("value of '{}'", key); }));
    uint64_t raw = load_le(p_ + pos_, n);
    pos_ += n;
    switch (static_cast<ValueType>(type)) {
      case ValueType::kU8: out = Value::u8(static_cast<uint8_t>(raw)); break;
      case ValueType::kI8: out = Value::i8(static_cast<int8_t>(raw)); break;
      case ValueType::kU16: out = Value::u16(static_cast<uint16_t>(raw)); break;
      case ValueType::kI16: out = Value::i16(static_cast<int16_t>(raw)); break;
      case ValueType::kU32: out = Value::u32(static_cast<uint32_t>(raw)); break;
      case ValueType::kI32: out = Value::i32(static_cast<int32_t>(raw)); break;
      case ValueType::kU64: out = Value::u64(raw); break;
      case ValueType::kI64: out = Value::i64(static_cast<int64_t>(raw)); break;
      case ValueType::kF32: {
        uint32_t b = static_cast<uint32_t>(raw);
        float fv;
        std::memcpy(&fv, &b, 4);
        out = Value::f32(fv);
        break;
      }
      case ValueType::kF64: {
        double dv;
        std::memcpy(&dv, &raw, 8);
        out = Value::f64(dv);
        break;
      }
      case ValueType::kBool:
        if (raw > 1) return fail(at, "metadata key '{}': bool value {} is neither 0 nor 1", key, raw);
        out = Value::boolean(raw != 0);
        break;
      default:
        break;
    }
    return Status::ok();
  }

  Status array(const std::string& key, int depth, Value& out) {
    size_t at = pos_;
    if (depth >= kMaxArrayDepth)
      return fail(at, "metadata key '{}': arrays nested more than {} deep", key, kMaxArrayDepth);
    uint32_t elem = 0;
    uint64_t count = 0;
    TANDEM_TRY(u32(elem, [&] { return fmt::format("array element type of '{}'", key); }));
    if (!known_value_type(elem))
      return fail(at, "metadata key '{}': unknown array element type id {}", key, elem);
    size_t count_at = pos_;
    TANDEM_TRY(u64(count, [&] { return fmt::format("array length of '{}'", key); }));
    // Each element takes at least this many bytes of the file.
    size_t min_elem = scalar_size(elem);
    if (elem == static_cast<uint32_t>(ValueType::kString)) min_elem = 8;
    if (elem == static_cast<uint32_t>(ValueType::kArray)) min_elem = 12;
    if (count > remaining() / min_elem)
      return fail(count_at, "metadata key '{}': array of {} {} elements cannot fit in the {} bytes "
                  "that remain", key, count, value_type_name(static_cast<ValueType>(elem)),
                  remaining());
    total_items_ += count;
    if (total_items_ > kMaxTotalArrayItems)
      return fail(count_at, "metadata key '{}': metadata arrays hold more than {} elements in total",
                  key, kMaxTotalArrayItems);
    std::vector<Value> items;
    items.reserve(static_cast<size_t>(count));
    for (uint64_t i = 0; i < count; ++i) {
      Value v;
      if (elem == static_cast<uint32_t>(ValueType::kArray)) {
        TANDEM_TRY(array(key, depth + 1, v));
      } else {
        TANDEM_TRY(value(elem, count_at, key, depth + 1, v));
      }
      items.push_back(std::move(v));
    }
    out = Value::array(static_cast<ValueType>(elem), std::move(items));
    return Status::ok();
  }

  Status alignment() {
    for (const auto& [key, v] : f_.metadata_) {
      if (key != "general.alignment") continue;
      if (!v.is_integer())
        return fail(16, "general.alignment has type {}, expected an integer",
                    value_type_name(v.type()));
      uint64_t a = v.as_u64();
      if (value_type_is_signed(v.type()) && v.as_i64() <= 0) a = 0;
      if (a == 0 || (a & (a - 1)) != 0 || a > kMaxAlignment)
        return fail(16, "general.alignment {} is not a power of two in 1..{}", v.to_string(),
                    kMaxAlignment);
      f_.alignment_ = static_cast<size_t>(a);
    }
    return Status::ok();
  }

  Status tensor_infos() {
    f_.tensors_.reserve(static_cast<size_t>(n_tensors_));
    std::unordered_set<std::string> names;
    for (uint64_t i = 0; i < n_tensors_; ++i) {
      size_t at = pos_;
      TensorInfo t;
      TANDEM_TRY(str(t.name, [&] { return fmt::format("name of tensor #{}", i); }));
      if (t.name.empty()) return fail(at, "tensor #{} has an empty name", i);
      if (!names.insert(t.name).second) return fail(at, "duplicate tensor name '{}'", t.name);
      size_t dims_at = pos_;
      uint32_t n_dims = 0;
      TANDEM_TRY(u32(n_dims, [&] { return fmt::format("n_dims of tensor '{}'", t.name); }));
      if (n_dims < 1 || n_dims > kMaxDims)
        return fail(dims_at, "tensor '{}': n_dims {} is outside 1..{}", t.name, n_dims, kMaxDims);
      int64_t n_elem = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        size_t dim_at = pos_;
        uint64_t ne = 0;
        TANDEM_TRY(u64(ne, [&] { return fmt::format("dimension {} of tensor '{}'", d, t.name); }));
        if (ne == 0) return fail(dim_at, "tensor '{}': dimension {} is zero", t.name, d);
        if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
            __builtin_mul_overflow(n_elem, static_cast<int64_t>(ne), &n_elem))
          return fail(dim_at, "tensor '{}': element count overflows at dimension {} ({})", t.name,
                      d, ne);
        t.shape.push_back(static_cast<int64_t>(ne));
      }
      size_t type_at = pos_;
      uint32_t type = 0;
      TANDEM_TRY(u32(type, [&] { return fmt::format("type of tensor '{}'", t.name); }));
      auto info = dtype_info(type);
      if (!info) return fail(type_at, "tensor '{}': unknown tensor type id {}", t.name, type);
      t.type = static_cast<DType>(type);
      if (t.shape[0] % info->block_elems != 0)
        return fail(dims_at, "tensor '{}': row length {} is not a multiple of the {} block size {}",
                    t.name, t.shape[0], info->name, info->block_elems);
      // bytes = (elements / block_elems) * block_bytes, overflow-checked.
      uint64_t blocks = static_cast<uint64_t>(n_elem) / info->block_elems;
      uint64_t bytes = 0;
      if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(info->block_bytes), &bytes) ||
          bytes > std::numeric_limits<size_t>::max())
        return fail(dims_at, "tensor '{}': byte size overflows", t.name);
      t.bytes = static_cast<size_t>(bytes);
      size_t off_at = pos_;
      TANDEM_TRY(u64(t.offset, [&] { return fmt::format("offset of tensor '{}'", t.name); }));
      if (t.offset % f_.alignment_ != 0)
        return fail(off_at, "tensor '{}': data offset {} is not a multiple of the alignment {}",
                    t.name, t.offset, f_.alignment_);
      info_at_.push_back(at);
      f_.tensors_.push_back(std::move(t));
    }
    return Status::ok();
  }

  Status tensor_data() {
    // The data section starts at the next multiple of the alignment after the infos.
    size_t a = f_.alignment_;
    size_t data = pos_ % a == 0 ? pos_ : pos_ + (a - pos_ % a);
    f_.data_offset_ = data;
    if (f_.tensors_.empty()) return Status::ok();  // vocab-only files may end unpadded
    if (data > size_)
      return fail(pos_, "file truncated: data section would start at byte {} (alignment {}) but the "
                  "file has {} bytes", data, a, size_);
    uint64_t data_size = size_ - data;
    for (size_t i = 0; i < f_.tensors_.size(); ++i) {
      TensorInfo& t = f_.tensors_[i];
      if (t.offset > data_size || t.bytes > data_size - t.offset)
        return fail(info_at_[i], "tensor '{}': data [{}, +{}) runs past the end of the data section "
                    "({} bytes, starting at byte {})", t.name, t.offset, t.bytes, data_size, data);
      t.data = f_.base_ + data + t.offset;
    }
    // Overlapping tensors mean a corrupt header.
    std::vector<size_t> order(f_.tensors_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t x, size_t y) { return f_.tensors_[x].offset < f_.tensors_[y].offset; });
    for (size_t k = 1; k < order.size(); ++k) {
      const TensorInfo& prev = f_.tensors_[order[k - 1]];
      const TensorInfo& cur = f_.tensors_[order[k]];
      if (prev.offset + prev.bytes > cur.offset)
        return fail(info_at_[order[k]], "tensor '{}' (data offset {}) overlaps tensor '{}' (data "
                    "[{}, +{}))", cur.name, cur.offset, prev.name, prev.offset, prev.bytes);
    }
    return Status::ok();
  }

  File& f_;
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
  uint64_t total_items_ = 0;
  std::vector<size_t> info_at_;  // byte offset of each tensor info (for error messages)
};

Result<std::unique_ptr<File>> File::parse(std::unique_ptr<File> f) {
  Parser p(*f);
  TANDEM_TRY(p.run());
  f->key_index_.reserve(f->metadata_.size());
  for (size_t i = 0; i < f->metadata_.size(); ++i) f->key_index_.emplace(f->metadata_[i].first, i);
  f->tensor_index_.reserve(f->tensors_.size());
  for (size_t i = 0; i < f->tensors_.size(); ++i) f->tensor_index_.emplace(f->tensors_[i].name, i);
  return f;
}

}  // namespace tandem::gguf
