#pragma once
// Helpers shared by the kernel tests.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cpu.h"

namespace tandem::kernels::testing {

// True when this CPU runs the AVX-512 kernels.
inline bool have_avx512() {
  for (CpuPath p : available_cpu_paths())
    if (p == CpuPath::kAvx512) return true;
  return false;
}

inline std::vector<float> randn(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

inline std::vector<float> uniform(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// sqrt(sum (a-b)^2 / sum b^2)
inline double rel_rmse(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

inline double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

// Runs the body once per CPU path this machine has, restoring the path after.
class PathGuard {
 public:
  PathGuard() : saved_(active_cpu_path()) {}
  ~PathGuard() { force_cpu_path(saved_); }
 private:
  CpuPath saved_;
};

}  // namespace tandem::kernels::testing
