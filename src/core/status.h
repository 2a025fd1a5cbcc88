#pragma once
// Status and Result<T>: how every fallible operation in Tandem reports failure.
// No exceptions cross library boundaries; a Status carries a code and a message
// that already names the file / key / tensor / sequence involved.
#include <string>
#include <utility>
#include <variant>
#include <cassert>

#include <fmt/format.h>

namespace tandem {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // caller passed something out of range
  kNotFound,          // missing key, tensor, file
  kCorrupt,           // a file's bytes contradict its format
  kUnsupported,       // a valid request we (or this memory) cannot honour
  kOutOfMemory,       // no room: KV cells, recurrent slots, snapshot pool
  kIo,                // the OS refused (open, mmap, write, rename)
  kCancelled,
  kInternal,
};

const char* status_code_name(StatusCode c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid argument: <message>"
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename... Args>
Status make_status(StatusCode code, fmt::format_string<Args...> f, Args&&... args) {
  return Status(code, fmt::format(f, std::forward<Args>(args)...));
}
#define TANDEM_ERR(code, ...) ::tandem::make_status(::tandem::StatusCode::code, __VA_ARGS__)

// Result<T>: a value or a non-ok Status (our small stand-in for std::expected).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).is_ok()); }

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const {
    static const Status kOkStatus;
    return is_ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace tandem

// Propagate a non-ok Status / Result from the current function.
#define TANDEM_TRY(expr)                         \
  do {                                           \
    ::tandem::Status _st = (expr);               \
    if (!_st.is_ok()) return _st;                \
  } while (0)

#define TANDEM_CONCAT_INNER(a, b) a##b
#define TANDEM_CONCAT(a, b) TANDEM_CONCAT_INNER(a, b)
#define TANDEM_ASSIGN_OR_RETURN(lhs, expr) \
  TANDEM_ASSIGN_OR_RETURN_IMPL(TANDEM_CONCAT(_res_, __LINE__), lhs, expr)
#define TANDEM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.is_ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
