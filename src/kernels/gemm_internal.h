#pragma once
// Internal matmul plumbing: the activations are first converted to the
// weight type's dot format (quant_internal.h: act_type_for), then a rows
// kernel computes y[c][r] for a range of rows and every column.
#include <cstddef>
#include <cstdint>

#include "kernels/cpu.h"
#include "kernels/kernels.h"

namespace tandem::kernels {

struct GemmTask {
  const Matrix* w = nullptr;
  const void* act = nullptr;   // [n_cols] rows of act_row_bytes, format act_type_for(w->type)
  size_t act_row_bytes = 0;
  int n_cols = 0;
  float* y = nullptr;          // [n_cols][w->rows]
};

using GemmRowsFn = void (*)(const GemmTask& t, int64_t r0, int64_t r1);
using QuantActFn = void (*)(DType act, const float* x, void* dst, int64_t n);

// Scalar dot of one weight row of type w with one activation row (n elements).
float dot_scalar(DType w, const void* wrow, const void* arow, int64_t n);
void gemm_rows_scalar(const GemmTask& t, int64_t r0, int64_t r1);

// SIMD kernels; nullptr when the path has no kernel for that type.
GemmRowsFn gemm_rows_avx2(DType w);
GemmRowsFn gemm_rows_avx512(DType w);

}  // namespace tandem::kernels
