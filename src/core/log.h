#pragma once
// Minimal leveled logging to stderr. Level from TANDEM_LOG (error|warn|info|debug),
// default warn, so that CLI output stays clean.
#include <fmt/format.h>

namespace tandem {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

LogLevel log_level();
void set_log_level(LogLevel level);
void log_line(LogLevel level, const std::string& msg);

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  if (level <= log_level()) log_line(level, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace tandem

#define TANDEM_LOG_ERROR(...) ::tandem::log(::tandem::LogLevel::kError, __VA_ARGS__)
#define TANDEM_LOG_WARN(...) ::tandem::log(::tandem::LogLevel::kWarn, __VA_ARGS__)
#define TANDEM_LOG_INFO(...) ::tandem::log(::tandem::LogLevel::kInfo, __VA_ARGS__)
#define TANDEM_LOG_DEBUG(...) ::tandem::log(::tandem::LogLevel::kDebug, __VA_ARGS__)
