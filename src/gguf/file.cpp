// File: opening (mmap / in-memory bytes) and the typed metadata getters.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "gguf/gguf.h"

namespace tandem::gguf {

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated not to overflow when read
  return n;
}

File::~File() {
  if (map_) munmap(map_, size_);
}

namespace {

// The file's bytes in anonymous memory advised for huge pages, read-only once
// filled. nullptr and `error` set on failure (the memory is released).
void* read_file_to_memory(int fd, size_t size, const std::string& path, Status* error) {
  void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    *error = Status(StatusCode::kIo, fmt::format("{}: cannot allocate {} bytes to read the file into: {}", path,
                                                 size, std::strerror(errno)));
    return nullptr;
  }
  // Only advice: without transparent huge pages the copy still works.
  (void)madvise(m, size, MADV_HUGEPAGE);
  size_t done = 0;
  while (done < size) {
    const ssize_t r = ::pread(fd, static_cast<char*>(m) + done, std::min<size_t>(size - done, size_t{1} << 30),
                              static_cast<off_t>(done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      *error = Status(StatusCode::kIo, r == 0 ? fmt::format("{}: the file ended at byte {} of {} while reading it",
                                                            path, done, size)
                                              : fmt::format("{}: read failed at byte {}: {}", path, done,
                                                            std::strerror(errno)));
      munmap(m, size);
      return nullptr;
    }
    done += static_cast<size_t>(r);
  }
  (void)mprotect(m, size, PROT_READ);  // the weights are never written
  return m;
}

}  // namespace

File::Load File::resolve_load(Load how, size_t file_size, size_t available) {
  if (how != Load::kAuto) return how;
  return file_size <= available / 2 ? Load::kRead : Load::kMmap;
}

size_t File::available_memory() {
  if (FILE* f = std::fopen("/proc/meminfo", "re")) {
    char line[256];
    unsigned long long kib = 0;
    bool found = false;
    while (!found && std::fgets(line, sizeof line, f)) found = std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1;
    std::fclose(f);
    if (found) return static_cast<size_t>(kib) * 1024;
  }
  const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : 0;
}

Result<std::unique_ptr<File>> File::open(const std::string& path, Load how) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return Status(e == ENOENT ? StatusCode::kNotFound : StatusCode::kIo,
                  fmt::format("{}: cannot open: {}", path, std::strerror(e)));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return Status(StatusCode::kIo, fmt::format("{}: cannot stat: {}", path, std::strerror(e)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status(StatusCode::kInvalidArgument, fmt::format("{}: not a regular file", path));
  }
  std::unique_ptr<File> f(new File());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (how == Load::kAuto) how = resolve_load(how, f->size_, available_memory());
  if (f->size_ > 0 && how == Load::kRead) {
    Status error;
    void* m = read_file_to_memory(fd, f->size_, path, &error);
    if (!m) {
      ::close(fd);
      return error;
    }
    f->map_ = m;
    f->base_ = static_cast<const uint8_t*>(m);
    f->read_into_memory_ = true;
  } else if (f->size_ > 0) {
    void* m = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      return Status(StatusCode::kIo, fmt::format("{}: cannot mmap {} bytes: {}", path, f->size_,
                                                 std::strerror(e)));
    }
    f->map_ = m;
    f->base_ = static_cast<const uint8_t*>(m);
  }
  ::close(fd);  // the mapping stays valid without the descriptor
  return parse(std::move(f));
}

Result<std::unique_ptr<File>> File::from_bytes(std::vector<uint8_t> bytes, std::string name) {
  std::unique_ptr<File> f(new File());
  f->path_ = std::move(name);
  f->bytes_ = std::move(bytes);
  f->size_ = f->bytes_.size();
  f->base_ = f->bytes_.data();
  return parse(std::move(f));
}

const Value* File::find(std::string_view key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

Status missing(const File& f, std::string_view key) {
  return Status(StatusCode::kNotFound, fmt::format("{}: metadata key '{}' is missing", f.path(), key));
}

Status wrong_type(const File& f, std::string_view key, const Value& v, std::string_view expected) {
  std::string got(value_type_name(v.type()));
  if (v.is_array()) got = fmt::format("array of {}", value_type_name(v.elem_type()));
  return Status(StatusCode::kCorrupt, fmt::format("{}: metadata key '{}' has type {}, expected {}",
                                                  f.path(), key, got, expected));
}

Status not_fit(const File& f, std::string_view key, const Value& v, std::string_view target) {
  return Status(StatusCode::kCorrupt, fmt::format("{}: metadata key '{}' value {} does not fit in {}",
                                                  f.path(), key, v.to_string(), target));
}

}  // namespace

Result<std::string> File::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return missing(*this, key);
  if (!v->is_string()) return wrong_type(*this, key, *v, "string");
  return std::string(v->as_string());
}

Result<int64_t> File::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return missing(*this, key);
  if (!v->is_integer()) return wrong_type(*this, key, *v, "an integer");
  if (!v->fits_i64()) return not_fit(*this, key, *v, "int64");
  return v->as_i64();
}

Result<uint32_t> File::get_u32(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return missing(*this, key);
  if (!v->is_integer()) return wrong_type(*this, key, *v, "an integer");
  bool neg = value_type_is_signed(v->type()) && v->as_i64() < 0;
  if (neg || v->as_u64() > std::numeric_limits<uint32_t>::max()) return not_fit(*this, key, *v, "u32");
  return static_cast<uint32_t>(v->as_u64());
}

Result<float> File::get_f32(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return missing(*this, key);
  if (!v->is_float()) return wrong_type(*this, key, *v, "f32 or f64");
  return static_cast<float>(v->as_f64());
}

Result<bool> File::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return missing(*this, key);
  if (v->type() != ValueType::kBool) return wrong_type(*this, key, *v, "bool");
  return v->as_bool();
}

Result<std::vector<std::string>> File::get_string_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return missing(*this, key);
  if (!v->is_array() || v->elem_type() != ValueType::kString)
    return wrong_type(*this, key, *v, "array of string");
  std::vector<std::string> out;
  out.reserve(v->size());
  for (const Value& item : v->items()) out.emplace_back(item.as_string());
  return out;
}

Result<std::vector<int64_t>> File::get_int_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return missing(*this, key);
  if (!v->is_array() || !value_type_is_integer(v->elem_type()))
    return wrong_type(*this, key, *v, "array of integers");
  std::vector<int64_t> out;
  out.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    const Value& item = v->at(i);
    if (!item.fits_i64())
      return Status(StatusCode::kCorrupt, fmt::format("{}: metadata key '{}' item {} ({}) does not "
                                                      "fit in int64", path_, key, i, item.to_string()));
    out.push_back(item.as_i64());
  }
  return out;
}

Result<std::vector<float>> File::get_f32_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return missing(*this, key);
  if (!v->is_array() || (v->elem_type() != ValueType::kF32 && v->elem_type() != ValueType::kF64))
    return wrong_type(*this, key, *v, "array of f32 or f64");
  std::vector<float> out;
  out.reserve(v->size());
  for (const Value& item : v->items()) out.push_back(static_cast<float>(item.as_f64()));
  return out;
}

Result<int64_t> File::get_int_or(std::string_view key, int64_t def) const {
  return find(key) ? get_int(key) : Result<int64_t>(def);
}
Result<uint32_t> File::get_u32_or(std::string_view key, uint32_t def) const {
  return find(key) ? get_u32(key) : Result<uint32_t>(def);
}
Result<float> File::get_f32_or(std::string_view key, float def) const {
  return find(key) ? get_f32(key) : Result<float>(def);
}
Result<bool> File::get_bool_or(std::string_view key, bool def) const {
  return find(key) ? get_bool(key) : Result<bool>(def);
}
Result<std::string> File::get_string_or(std::string_view key, std::string def) const {
  return find(key) ? get_string(key) : Result<std::string>(std::move(def));
}

}  // namespace tandem::gguf
