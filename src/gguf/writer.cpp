// GGUF v3 writer. Layout written: header, key/values, tensor infos, zero padding
// to the alignment, then each tensor's bytes at an aligned offset (in add order).
#include "gguf/writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_set>

namespace tandem::gguf {

namespace detail {

// Where serialized bytes go: memory (to_bytes) or a file descriptor (write).
class Sink {
 public:
  virtual ~Sink() = default;
  virtual Status put(const void* p, size_t n) = 0;
  size_t written() const { return n_; }

 protected:
  size_t n_ = 0;
};

class VecSink : public Sink {
 public:
  explicit VecSink(std::vector<uint8_t>& out) : out_(out) {}
  Status put(const void* p, size_t n) override {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
    n_ += n;
    return Status::ok();
  }

 private:
  std::vector<uint8_t>& out_;
};

// Buffered writes to a descriptor; the first error is reported with the path.
class FdSink : public Sink {
 public:
  FdSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  Status put(const void* p, size_t n) override {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    if (buf_.size() + n > kBuf) TANDEM_TRY(flush());
    if (n >= kBuf) return raw(b, n);
    buf_.insert(buf_.end(), b, b + n);
    n_ += n;
    return Status::ok();
  }
  Status flush() {
    Status st = raw_nocount(buf_.data(), buf_.size());
    buf_.clear();
    return st;
  }

 private:
  static constexpr size_t kBuf = 1 << 20;
  Status raw(const uint8_t* b, size_t n) {
    n_ += n;
    return raw_nocount(b, n);
  }
  Status raw_nocount(const uint8_t* b, size_t n) {
    while (n > 0) {
      ssize_t w = ::write(fd_, b, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Status(StatusCode::kIo, fmt::format("{}: write failed: {}", path_, std::strerror(errno)));
      }
      b += w;
      n -= static_cast<size_t>(w);
    }
    return Status::ok();
  }
  int fd_;
  std::string path_;
  std::vector<uint8_t> buf_;
};

}  // namespace detail

namespace {

using detail::FdSink;
using detail::Sink;
using detail::VecSink;

template <typename T>
Status put_le(Sink& s, T v) {
  uint8_t b[sizeof(T)];
  uint64_t u = static_cast<uint64_t>(v);
  for (size_t i = 0; i < sizeof(T); ++i) b[i] = static_cast<uint8_t>(u >> (8 * i));
  return s.put(b, sizeof(T));
}

Status put_str(Sink& s, std::string_view str) {
  TANDEM_TRY(put_le<uint64_t>(s, str.size()));
  return s.put(str.data(), str.size());
}

Status put_payload(Sink& s, const Value& v) {
  switch (v.type()) {
    case ValueType::kU8: case ValueType::kI8: return put_le<uint8_t>(s, static_cast<uint8_t>(v.as_u64()));
    case ValueType::kBool: return put_le<uint8_t>(s, v.as_bool() ? 1 : 0);
    case ValueType::kU16: case ValueType::kI16: return put_le<uint16_t>(s, static_cast<uint16_t>(v.as_u64()));
    case ValueType::kU32: case ValueType::kI32: return put_le<uint32_t>(s, static_cast<uint32_t>(v.as_u64()));
    case ValueType::kU64: case ValueType::kI64: return put_le<uint64_t>(s, v.as_u64());
    // Bit patterns, not values: NaN payloads survive a rewrite.
    case ValueType::kF32: return put_le<uint32_t>(s, static_cast<uint32_t>(v.raw_bits()));
    case ValueType::kF64: return put_le<uint64_t>(s, v.raw_bits());
    case ValueType::kString: return put_str(s, v.as_string());
    case ValueType::kArray:
      TANDEM_TRY(put_le<uint32_t>(s, static_cast<uint32_t>(v.elem_type())));
      TANDEM_TRY(put_le<uint64_t>(s, v.size()));
      for (const Value& item : v.items()) TANDEM_TRY(put_payload(s, item));
      return Status::ok();
  }
  return Status::ok();
}

// Every array item has the declared element type; nesting within the reader's limit.
Status check_value(std::string_view key, const Value& v, int depth) {
  if (!v.is_array()) return Status::ok();
  if (depth >= kMaxArrayDepth)
    return TANDEM_ERR(kInvalidArgument, "gguf writer: key '{}': arrays nested more than {} deep", key,
                      kMaxArrayDepth);
  for (size_t i = 0; i < v.size(); ++i) {
    if (v.at(i).type() != v.elem_type())
      return TANDEM_ERR(kInvalidArgument, "gguf writer: key '{}': item {} has type {} in an array of {}",
                        key, i, value_type_name(v.at(i).type()), value_type_name(v.elem_type()));
    TANDEM_TRY(check_value(key, v.at(i), depth + 1));
  }
  return Status::ok();
}

size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

}  // namespace

void Writer::set(std::string_view key, Value value) {
  for (auto& kv : metadata_) {
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(std::string(key), std::move(value));
}

void Writer::set_string_array(std::string_view key, const std::vector<std::string>& v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (const auto& s : v) items.push_back(Value::string(s));
  set(key, Value::array(ValueType::kString, std::move(items)));
}

#define TANDEM_GGUF_SCALAR_ARRAY(fn, T, ctor, vt)                             \
  void Writer::fn(std::string_view key, const std::vector<T>& v) {            \
    std::vector<Value> items;                                                 \
    items.reserve(v.size());                                                  \
    for (T x : v) items.push_back(Value::ctor(x));                            \
    set(key, Value::array(ValueType::vt, std::move(items)));                  \
  }
TANDEM_GGUF_SCALAR_ARRAY(set_i32_array, int32_t, i32, kI32)
TANDEM_GGUF_SCALAR_ARRAY(set_u32_array, uint32_t, u32, kU32)
TANDEM_GGUF_SCALAR_ARRAY(set_i64_array, int64_t, i64, kI64)
TANDEM_GGUF_SCALAR_ARRAY(set_f32_array, float, f32, kF32)
#undef TANDEM_GGUF_SCALAR_ARRAY

void Writer::set_bool_array(std::string_view key, const std::vector<bool>& v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (bool x : v) items.push_back(Value::boolean(x));
  set(key, Value::array(ValueType::kBool, std::move(items)));
}

void Writer::copy_metadata(const File& f) {
  for (const auto& [k, v] : f.metadata()) set(k, v);
}

void Writer::set_alignment(size_t alignment) {
  alignment_ = alignment;
  set_u32("general.alignment", static_cast<uint32_t>(alignment));
}

void Writer::add_tensor(std::string name, DType type, std::vector<int64_t> shape, const void* data,
                        size_t bytes) {
  tensors_.push_back({std::move(name), type, std::move(shape), data, bytes});
}

Result<size_t> Writer::validate() const {
  size_t alignment = alignment_;
  for (const auto& [k, v] : metadata_) {
    if (k.empty()) return TANDEM_ERR(kInvalidArgument, "gguf writer: empty metadata key");
    TANDEM_TRY(check_value(k, v, 0));
    if (k == "general.alignment") {
      uint64_t a = v.is_integer() && !(value_type_is_signed(v.type()) && v.as_i64() <= 0) ? v.as_u64() : 0;
      if (a == 0 || (a & (a - 1)) != 0 || a > (uint64_t{1} << 30))
        return TANDEM_ERR(kInvalidArgument, "gguf writer: general.alignment {} is not a power of two",
                          v.to_string());
      alignment = static_cast<size_t>(a);
    }
  }
  std::unordered_set<std::string_view> names;
  for (const auto& t : tensors_) {
    if (t.name.empty()) return TANDEM_ERR(kInvalidArgument, "gguf writer: tensor with an empty name");
    if (!names.insert(t.name).second)
      return TANDEM_ERR(kInvalidArgument, "gguf writer: duplicate tensor '{}'", t.name);
    if (t.shape.empty() || t.shape.size() > kMaxDims)
      return TANDEM_ERR(kInvalidArgument, "gguf writer: tensor '{}' has {} dimensions (1..{})", t.name,
                        t.shape.size(), kMaxDims);
    auto info = dtype_info(static_cast<uint32_t>(t.type));
    if (!info) return TANDEM_ERR(kInvalidArgument, "gguf writer: tensor '{}' has an unknown type", t.name);
    int64_t n = 1;
    for (int64_t d : t.shape) {
      if (d <= 0 || __builtin_mul_overflow(n, d, &n))
        return TANDEM_ERR(kInvalidArgument, "gguf writer: tensor '{}' has a bad dimension {}", t.name, d);
    }
    if (t.shape[0] % info->block_elems != 0)
      return TANDEM_ERR(kInvalidArgument, "gguf writer: tensor '{}': row length {} is not a multiple "
                        "of the {} block size {}", t.name, t.shape[0], info->name, info->block_elems);
    size_t expect = static_cast<size_t>(n / info->block_elems) * info->block_bytes;
    if (expect != t.bytes)
      return TANDEM_ERR(kInvalidArgument, "gguf writer: tensor '{}': {} bytes given but {} "
                        "elements of {} take {}", t.name, t.bytes, n, info->name, expect);
    if (!t.data && t.bytes)
      return TANDEM_ERR(kInvalidArgument, "gguf writer: tensor '{}' has no data", t.name);
  }
  return alignment;
}

Status Writer::emit(Sink& s, size_t alignment) const {
  TANDEM_TRY(s.put("GGUF", 4));
  TANDEM_TRY(put_le<uint32_t>(s, 3));
  TANDEM_TRY(put_le<uint64_t>(s, tensors_.size()));
  TANDEM_TRY(put_le<uint64_t>(s, metadata_.size()));
  for (const auto& [k, v] : metadata_) {
    TANDEM_TRY(put_str(s, k));
    TANDEM_TRY(put_le<uint32_t>(s, static_cast<uint32_t>(v.type())));
    TANDEM_TRY(put_payload(s, v));
  }
  // Tensor data offsets (relative to the data section), each aligned.
  uint64_t off = 0;
  std::vector<uint64_t> offsets;
  offsets.reserve(tensors_.size());
  for (const auto& t : tensors_) {
    TANDEM_TRY(put_str(s, t.name));
    TANDEM_TRY(put_le<uint32_t>(s, static_cast<uint32_t>(t.shape.size())));
    for (int64_t d : t.shape) TANDEM_TRY(put_le<uint64_t>(s, static_cast<uint64_t>(d)));
    TANDEM_TRY(put_le<uint32_t>(s, static_cast<uint32_t>(t.type)));
    TANDEM_TRY(put_le<uint64_t>(s, off));
    offsets.push_back(off);
    off = align_up(off + t.bytes, alignment);
  }
  if (tensors_.empty()) return Status::ok();
  static const std::vector<uint8_t> kZeros(1 << 16, 0);
  auto pad_to = [&](size_t target) -> Status {
    while (s.written() < target) {
      size_t n = std::min(target - s.written(), kZeros.size());
      TANDEM_TRY(s.put(kZeros.data(), n));
    }
    return Status::ok();
  };
  size_t data_start = align_up(s.written(), alignment);
  TANDEM_TRY(pad_to(data_start));
  for (size_t i = 0; i < tensors_.size(); ++i) {
    TANDEM_TRY(pad_to(data_start + offsets[i]));
    TANDEM_TRY(s.put(tensors_[i].data, tensors_[i].bytes));
  }
  return pad_to(data_start + off);
}

Result<std::vector<uint8_t>> Writer::to_bytes() const {
  TANDEM_ASSIGN_OR_RETURN(size_t alignment, validate());
  std::vector<uint8_t> out;
  VecSink sink(out);
  TANDEM_TRY(emit(sink, alignment));
  return out;
}

Status Writer::write(const std::string& path) const {
  TANDEM_ASSIGN_OR_RETURN(size_t alignment, validate());
  // Same directory as the target, so the rename is atomic (same filesystem).
  std::string tmp = fmt::format("{}.tmp.{}", path, static_cast<long>(::getpid()));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return Status(StatusCode::kIo, fmt::format("{}: cannot create: {}", tmp, std::strerror(errno)));
  FdSink sink(fd, tmp);
  Status st = emit(sink, alignment);
  if (st.is_ok()) st = sink.flush();
  if (st.is_ok() && ::fsync(fd) != 0)
    st = Status(StatusCode::kIo, fmt::format("{}: fsync failed: {}", tmp, std::strerror(errno)));
  if (::close(fd) != 0 && st.is_ok())
    st = Status(StatusCode::kIo, fmt::format("{}: close failed: {}", tmp, std::strerror(errno)));
  if (st.is_ok() && ::rename(tmp.c_str(), path.c_str()) != 0)
    st = Status(StatusCode::kIo, fmt::format("{}: cannot rename {} into place: {}", path, tmp,
                                             std::strerror(errno)));
  if (!st.is_ok()) ::unlink(tmp.c_str());
  return st;
}

}  // namespace tandem::gguf
