#pragma once
// A/B switches read from the environment (TANDEM_GEMM_TILED=0 and the like):
// every switch is on unless its variable starts with '0', off-by-default
// ones only when it is exactly "1". Call sites keep the value in a static,
// so each variable is read once per process.
#include <cstdlib>
#include <cstring>

namespace tandem {

// True unless `name` is set to a value starting with '0'.
inline bool env_switch_on(const char* name) {
  const char* e = std::getenv(name);
  return !(e && e[0] == '0');
}

// True only when `name` is set to exactly "1".
inline bool env_switch_set(const char* name) {
  const char* e = std::getenv(name);
  return e && std::strcmp(e, "1") == 0;
}

}  // namespace tandem
