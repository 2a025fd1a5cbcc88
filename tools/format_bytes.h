#pragma once
// Byte sizes and counts as the `tandem` commands print them (bench, inspect,
// inspect --memory, quantize, gen-model): one place for the units.
#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace tandem::tools {

// Bytes → MiB (2^20 bytes).
inline double to_mib(double bytes) { return bytes / (1024.0 * 1024.0); }

// "12.34 MiB".
inline std::string format_mib(double bytes) { return fmt::format("{:.2f} MiB", to_mib(bytes)); }

// The largest binary unit that keeps the value >= 1: "512 B", "1.50 KiB", "3.25 GiB".
inline std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4) {
    b /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} {}", b, units[u]) : fmt::format("{:.2f} {}", b, units[u]);
}

// A count with a decimal suffix: "1.23{sep}M"; below 1000 the plain number.
template <class Int>
std::string human_count(Int n, const char* sep = "") {
  if (n >= 1'000'000'000) return fmt::format("{:.2f}{}B", n / 1e9, sep);
  if (n >= 1'000'000) return fmt::format("{:.2f}{}M", n / 1e6, sep);
  if (n >= 1'000) return fmt::format("{:.2f}{}K", n / 1e3, sep);
  return fmt::format("{}", n);
}

}  // namespace tandem::tools
