#pragma once
// Pieces shared by the AVX-512 decode GEMVs (gemv_q8_0 / gemv_q4_k /
// gemv_q6_k _avx512.cpp), with kernels/hsum.h, the row sum they share with the
// row-block kernels. Kernel .cpp files only: it includes simd_target.h.
#include "kernels/simd_target.h"  // first: target attributes, GCC 12 warning workaround
#include <immintrin.h>

#include <type_traits>

#include "kernels/gemv_internal.h"
#include "kernels/hsum.h"

namespace tandem::kernels::gemv512 {

// fn(std::integral_constant<int, NC>{}) with NC = n_cols, for 1..kGemvMaxCols
// (gemv_rows_avx512 hands out no other count): each GEMV's rows<NC> are
// instantiated once per column count.
template <typename F>
void with_cols(int n_cols, F&& fn) {
  switch (n_cols) {
    case 1: fn(std::integral_constant<int, 1>{}); break;
    case 2: fn(std::integral_constant<int, 2>{}); break;
    case 3: fn(std::integral_constant<int, 3>{}); break;
    case 4: fn(std::integral_constant<int, 4>{}); break;
    case 5: fn(std::integral_constant<int, 5>{}); break;
    case 6: fn(std::integral_constant<int, 6>{}); break;
    case 7: fn(std::integral_constant<int, 7>{}); break;
    case 8: fn(std::integral_constant<int, 8>{}); break;
    default: break;
  }
  static_assert(kGemvMaxCols == 8);
}

// Software prefetch for the K-quant decode GEMVs, which read their rows
// front to back, block after block. Per block of kBlockBytes, the lines
// kPrefetchAhead bytes further on are requested (a thread's range is
// contiguous, so that is a later block of this row or of the next rows; past
// the range's end it is only a wasted request). The hardware prefetchers
// alone kept too few lines in flight: 350m Q4_K_M tg128 rose 3-23 % with it
// (median 7 %; 4 KB / 8 KB / 16 KB ahead alike, 1 KB not; docs/benchmarks.md,
// session 10).
constexpr int kPrefetchAhead = 8192;

template <int kBlockBytes>
TANDEM_TARGET_AVX512 inline void prefetch_ahead(const void* block) {
  const char* p = static_cast<const char*>(block) + kPrefetchAhead;
  for (int o = 0; o < kBlockBytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
}

}  // namespace tandem::kernels::gemv512
