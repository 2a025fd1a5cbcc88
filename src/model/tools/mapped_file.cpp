#include "model/tools/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tandem::model {

MappedFile::~MappedFile() {
  if (map_ != nullptr) munmap(map_, size_);
}

Result<std::unique_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    return Status(e == ENOENT ? StatusCode::kNotFound : StatusCode::kIo,
                  fmt::format("{}: cannot open: {}", path, std::strerror(e)));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return TANDEM_ERR(kIo, "{}: not a regular file", path);
  }
  std::unique_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  static const uint8_t kEmpty = 0;
  f->data_ = &kEmpty;
  if (f->size_ > 0) {
    void* m = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      return TANDEM_ERR(kIo, "{}: cannot mmap {} bytes: {}", path, f->size_, std::strerror(e));
    }
    f->map_ = m;
    f->data_ = static_cast<const uint8_t*>(m);
  }
  ::close(fd);
  return f;
}

}  // namespace tandem::model
