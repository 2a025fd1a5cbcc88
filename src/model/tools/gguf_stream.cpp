// Streaming GGUF v3 writer. Layout: "GGUF" | u32 3 | u64 n_tensors | u64 n_kv |
// key/values | tensor infos | zeros to the alignment | each tensor at its aligned
// offset, zero padded to the alignment after the last one.
#include "model/tools/gguf_stream.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <unordered_set>

namespace tandem::model {

namespace {

constexpr size_t kBufBytes = 1 << 20;

size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

void le(std::vector<uint8_t>& out, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void str(std::vector<uint8_t>& out, std::string_view s) {
  le(out, s.size(), 8);
  out.insert(out.end(), s.begin(), s.end());
}

void payload(std::vector<uint8_t>& out, const gguf::Value& v) {
  using gguf::ValueType;
  switch (v.type()) {
    case ValueType::kU8: case ValueType::kI8: le(out, v.as_u64(), 1); return;
    case ValueType::kBool: le(out, v.as_bool() ? 1 : 0, 1); return;
    case ValueType::kU16: case ValueType::kI16: le(out, v.as_u64(), 2); return;
    case ValueType::kU32: case ValueType::kI32: le(out, v.as_u64(), 4); return;
    case ValueType::kU64: case ValueType::kI64: le(out, v.as_u64(), 8); return;
    case ValueType::kF32: le(out, std::bit_cast<uint32_t>(static_cast<float>(v.as_f64())), 4); return;
    case ValueType::kF64: le(out, std::bit_cast<uint64_t>(v.as_f64()), 8); return;
    case ValueType::kString: str(out, v.as_string()); return;
    case ValueType::kArray:
      le(out, static_cast<uint32_t>(v.elem_type()), 4);
      le(out, v.size(), 8);
      for (const gguf::Value& item : v.items()) payload(out, item);
      return;
  }
}

}  // namespace

GgufStreamWriter::~GgufStreamWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void GgufStreamWriter::set(std::string_view key, gguf::Value value) {
  for (auto& kv : metadata_) {
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(std::string(key), std::move(value));
}

void GgufStreamWriter::set_i32_array(std::string_view key, const std::vector<int32_t>& v) {
  std::vector<gguf::Value> items;
  items.reserve(v.size());
  for (int32_t x : v) items.push_back(gguf::Value::i32(x));
  set(key, gguf::Value::array(gguf::ValueType::kI32, std::move(items)));
}

void GgufStreamWriter::add_tensor(std::string name, DType type, std::vector<int64_t> shape) {
  Decl d{std::move(name), type, std::move(shape)};
  const DTypeInfo& info = dtype_info(type);
  int64_t n = 1;
  bool ok = !d.shape.empty() && d.shape.size() <= gguf::kMaxDims;
  for (int64_t x : d.shape) ok = ok && x > 0 && !__builtin_mul_overflow(n, x, &n);
  ok = ok && d.shape[0] % info.block_elems == 0;
  d.valid = ok;
  d.bytes = ok ? static_cast<size_t>(n / info.block_elems) * info.block_bytes : 0;
  tensors_.push_back(std::move(d));
}

Status GgufStreamWriter::put(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  written_ += n;
  if (buf_.size() + n <= kBufBytes) {
    buf_.insert(buf_.end(), b, b + n);
    return Status::ok();
  }
  TANDEM_TRY(flush());
  while (n > 0) {
    const ssize_t w = ::write(fd_, b, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return TANDEM_ERR(kIo, "{}: write failed: {}", tmp_, std::strerror(errno));
    }
    b += w;
    n -= static_cast<size_t>(w);
  }
  return Status::ok();
}

Status GgufStreamWriter::flush() {
  const uint8_t* b = buf_.data();
  size_t n = buf_.size();
  while (n > 0) {
    const ssize_t w = ::write(fd_, b, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return TANDEM_ERR(kIo, "{}: write failed: {}", tmp_, std::strerror(errno));
    }
    b += w;
    n -= static_cast<size_t>(w);
  }
  buf_.clear();
  return Status::ok();
}

Status GgufStreamWriter::pad_to(uint64_t target) {
  static const uint8_t kZeros[256] = {};
  while (written_ < target) TANDEM_TRY(put(kZeros, std::min<uint64_t>(sizeof(kZeros), target - written_)));
  return Status::ok();
}

Status GgufStreamWriter::fail(Status st) {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
    fd_ = -1;
  }
  return st;
}

Status GgufStreamWriter::begin(const std::string& path) {
  if (fd_ >= 0) return TANDEM_ERR(kInvalidArgument, "{}: gguf stream writer already started", path);
  for (const auto& [k, v] : metadata_) {
    if (k == "general.alignment") {
      const uint64_t a = v.is_integer() ? v.as_u64() : 0;
      if (a == 0 || (a & (a - 1)) != 0 || a > (uint64_t{1} << 30)) {
        return TANDEM_ERR(kInvalidArgument, "{}: general.alignment {} is not a power of two", path, v.to_string());
      }
      alignment_ = static_cast<size_t>(a);
    }
  }
  std::unordered_set<std::string_view> names;
  uint64_t off = 0;
  for (Decl& t : tensors_) {
    if (!t.valid) return TANDEM_ERR(kInvalidArgument, "{}: tensor '{}' has a bad shape for {}", path, t.name, dtype_name(t.type));
    if (t.name.empty() || !names.insert(t.name).second) {
      return TANDEM_ERR(kInvalidArgument, "{}: empty or duplicate tensor name '{}'", path, t.name);
    }
    t.offset = off;
    off = align_up(off + t.bytes, alignment_);
  }
  std::vector<uint8_t> head;
  head.reserve(4096);
  le(head, 0x46554747u, 4);  // "GGUF"
  le(head, 3, 4);
  le(head, tensors_.size(), 8);
  le(head, metadata_.size(), 8);
  for (const auto& [k, v] : metadata_) {
    str(head, k);
    le(head, static_cast<uint32_t>(v.type()), 4);
    payload(head, v);
  }
  for (const Decl& t : tensors_) {
    str(head, t.name);
    le(head, t.shape.size(), 4);
    for (int64_t d : t.shape) le(head, static_cast<uint64_t>(d), 8);
    le(head, static_cast<uint32_t>(t.type), 4);
    le(head, t.offset, 8);
  }
  path_ = path;
  tmp_ = fmt::format("{}.tmp.{}", path, static_cast<long>(::getpid()));
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) return TANDEM_ERR(kIo, "{}: cannot create: {}", tmp_, std::strerror(errno));
  buf_.reserve(kBufBytes);
  written_ = 0;
  next_ = 0;
  Status st = put(head.data(), head.size());
  if (st.is_ok() && !tensors_.empty()) {
    data_start_ = align_up(written_, alignment_);
    st = pad_to(data_start_);
  }
  return st.is_ok() ? st : fail(st);
}

Status GgufStreamWriter::write_tensor(const void* data, size_t bytes) {
  if (fd_ < 0) return TANDEM_ERR(kInvalidArgument, "{}: write_tensor before begin()", path_);
  if (next_ >= tensors_.size()) return fail(TANDEM_ERR(kInvalidArgument, "{}: more tensors than declared", path_));
  const Decl& t = tensors_[next_];
  if (bytes != t.bytes) {
    return fail(TANDEM_ERR(kInvalidArgument, "{}: tensor '{}': {} bytes given, {} expected", path_, t.name, bytes, t.bytes));
  }
  Status st = pad_to(data_start_ + t.offset);
  if (st.is_ok()) st = put(data, bytes);
  if (!st.is_ok()) return fail(st);
  ++next_;
  return Status::ok();
}

Status GgufStreamWriter::finish() {
  if (fd_ < 0) return TANDEM_ERR(kInvalidArgument, "{}: finish before begin()", path_);
  if (next_ != tensors_.size()) {
    return fail(TANDEM_ERR(kInvalidArgument, "{}: only {} of {} tensors written", path_, next_, tensors_.size()));
  }
  Status st = Status::ok();
  if (!tensors_.empty()) {
    const Decl& last = tensors_.back();
    st = pad_to(data_start_ + align_up(last.offset + last.bytes, alignment_));
  }
  if (st.is_ok()) st = flush();
  if (st.is_ok() && ::fsync(fd_) != 0) st = TANDEM_ERR(kIo, "{}: fsync failed: {}", tmp_, std::strerror(errno));
  if (!st.is_ok()) return fail(st);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    ::unlink(tmp_.c_str());
    return TANDEM_ERR(kIo, "{}: close failed: {}", tmp_, std::strerror(errno));
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp_.c_str());
    return TANDEM_ERR(kIo, "{}: cannot rename {} into place: {}", path_, tmp_, std::strerror(e));
  }
  return Status::ok();
}

}  // namespace tandem::model
