#pragma once
// Target attributes of the SIMD code paths, one feature list per CpuPath.
// Kernels are compiled function by function with these attributes and chosen
// at run time (cpu.h); builds never use -march=native. Each list is exactly
// what cpu.cpp checks before it selects the path (has_avx2, has_avx512), so a
// function marked with one never runs on a CPU without those features.
//
// For kernel .cpp files only: it also silences, for the rest of the file,
// GCC 12's false -Wuninitialized / -Wmaybe-uninitialized warnings on the
// AVX-512 reduce intrinsics (_mm512_reduce_add_ps and friends).
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define TANDEM_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TANDEM_TARGET_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
// The AVX-512 path plus AVX512_BF16 (gemm_bf16.cpp checks that feature itself).
#define TANDEM_TARGET_AVX512_BF16 \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512bf16")))
