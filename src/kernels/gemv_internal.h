#pragma once
// Decode GEMV kernels (1..8 activation columns) that compute every column in
// one pass over the weights. matmul() hands each thread ONE contiguous row
// range (per-call setup such as repacking the activations happens once per
// thread), so these kernels must accept any range length.
#include <cstdint>

#include "kernels/gemm_internal.h"

namespace tandem::kernels {

inline constexpr int kGemvMaxCols = 8;

// nullptr when the path has no dedicated GEMV kernel for weight type w (the
// shared rows kernels of gemm_internal.h are used then).
GemmRowsFn gemv_rows_avx512(DType w);
GemmRowsFn gemv_q4_k_avx512();  // gemv_q4_k_avx512.cpp
GemmRowsFn gemv_q5_k_avx512();  // gemv_q4_k_avx512.cpp
GemmRowsFn gemv_q6_k_avx512();  // gemv_q6_k_avx512.cpp

}  // namespace tandem::kernels
