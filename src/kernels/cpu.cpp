#include "kernels/cpu.h"

#include <cpuid.h>

#include <atomic>
#include <cstdlib>
#include <string_view>

#include "core/log.h"

namespace tandem::kernels {
namespace {

uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1;
  const bool avx = (c >> 28) & 1;
  const bool fma = (c >> 12) & 1;
  const bool f16c = (c >> 29) & 1;
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = (xcr0 & 0xe6) == 0xe6;
  if (!ymm_os) return f;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = (b >> 5) & 1;
  f.fma = fma;
  f.f16c = f16c;
  if (zmm_os) {
    f.avx512f = (b >> 16) & 1;
    f.avx512dq = (b >> 17) & 1;
    f.avx512bw = (b >> 30) & 1;
    f.avx512vl = (b >> 31) & 1;
    f.avx512vnni = (c >> 11) & 1;
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    f.avx512bf16 = (a1 >> 5) & 1;
  }
  return f;
}

bool has_avx2(const CpuFeatures& f) { return f.avx2 && f.fma && f.f16c; }
bool has_avx512(const CpuFeatures& f) {
  return has_avx2(f) && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni;
}

CpuPath best_path() {
  const CpuFeatures& f = cpu_features();
  if (has_avx512(f)) return CpuPath::kAvx512;
  if (has_avx2(f)) return CpuPath::kAvx2;
  return CpuPath::kScalar;
}

bool path_available(CpuPath p) {
  for (CpuPath q : available_cpu_paths())
    if (q == p) return true;
  return false;
}

CpuPath initial_path() {
  CpuPath best = best_path();
  const char* env = std::getenv("TANDEM_CPU");
  if (!env || !*env) return best;
  std::string_view s(env);
  CpuPath want;
  if (s == "scalar") want = CpuPath::kScalar;
  else if (s == "avx2") want = CpuPath::kAvx2;
  else if (s == "avx512") want = CpuPath::kAvx512;
  else {
    TANDEM_LOG_WARN("TANDEM_CPU='{}' is not one of scalar|avx2|avx512; using {}", s, cpu_path_name(best));
    return best;
  }
  if (!path_available(want)) {
    TANDEM_LOG_WARN("TANDEM_CPU={} is not supported by this CPU; using {}", s, cpu_path_name(best));
    return best;
  }
  return want;
}

std::atomic<int>& path_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_path())};
  return slot;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

std::vector<CpuPath> available_cpu_paths() {
  std::vector<CpuPath> v{CpuPath::kScalar};
  const CpuFeatures& f = cpu_features();
  if (has_avx2(f)) v.push_back(CpuPath::kAvx2);
  if (has_avx512(f)) v.push_back(CpuPath::kAvx512);
  return v;
}

CpuPath active_cpu_path() { return static_cast<CpuPath>(path_slot().load(std::memory_order_relaxed)); }

void force_cpu_path(CpuPath p) {
  if (!path_available(p)) {
    TANDEM_LOG_WARN("force_cpu_path({}): not available on this CPU, ignored", cpu_path_name(p));
    return;
  }
  path_slot().store(static_cast<int>(p), std::memory_order_relaxed);
}

const char* cpu_path_name(CpuPath p) {
  switch (p) {
    case CpuPath::kScalar: return "scalar";
    case CpuPath::kAvx2: return "avx2";
    case CpuPath::kAvx512: return "avx512";
  }
  return "?";
}

}  // namespace tandem::kernels
