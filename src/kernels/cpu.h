#pragma once
// CPU feature detection (once) and the choice of SIMD path used by every
// kernel entry point. Never compiled with -march: SIMD functions carry
// __attribute__((target(...))) and are only called when the path is active.
#include <vector>

namespace tandem::kernels {

enum class CpuPath { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512bf16 = false;
};

// Detected once (cpuid + xgetbv: the OS must save the wide registers).
const CpuFeatures& cpu_features();

// kAvx2 needs AVX2+FMA+F16C; kAvx512 needs AVX-512 F/BW/VL/DQ/VNNI (BF16 is
// used inside the AVX-512 path when present).
std::vector<CpuPath> available_cpu_paths();

// The path kernels use now: TANDEM_CPU=scalar|avx2|avx512 if set (capped to
// what the machine has, with a warning), else the best available.
CpuPath active_cpu_path();
// Tests: switch path (must be available). Not meant to race with running kernels.
void force_cpu_path(CpuPath p);
const char* cpu_path_name(CpuPath p);

}  // namespace tandem::kernels
