#pragma once
// Wide (prompt prefill) AVX-512 VNNI kernels for Q4_K / Q5_K / Q6_K weights.
//
// matmul() hands them products with more than kGemvMaxCols columns on the
// AVX-512 path (after converting the activations to Q8_K rows, the task's act
// is [n_cols] rows of Q8_K blocks). Every output is BIT-IDENTICAL to the
// row-block kernels of gemm_q_simd.inc (rows_q45_k / rows_q6_k): the same
// integer in each of the 8 lanes per super-block, the same f32 fmadd/fnmadd
// sequence per lane, the same final hsum8_ps. The decode GEMV
// (gemv_q4_k_avx512.cpp) matches those kernels too, so whole-prompt and
// token-by-token runs of a model keep agreeing bit for bit.
#include "kernels/gemm_internal.h"

namespace tandem::kernels {

class ThreadPool;

using GemmWideFn = void (*)(const GemmTask& t, ThreadPool& pool);

// nullptr unless w is Q4_K, Q5_K or Q6_K. Only call on CpuPath::kAvx512.
GemmWideFn gemm_k_wide_avx512(DType w);

// On by default; TANDEM_KQUANT_WIDE=0 (read once) sends these products back
// to the row-block kernels (A/B switch). Tests may flip it between calls.
bool kquant_wide_enabled();
void set_kquant_wide_enabled(bool on);

}  // namespace tandem::kernels
