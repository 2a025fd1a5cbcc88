#pragma once
// Internal quantization helpers shared by the scalar and SIMD kernels.
#include <cstdint>

#include "core/dtype.h"

namespace tandem::kernels {

// Scalar reference (de)quantizers, one block row at a time.
void dequantize_row_scalar(DType t, const void* src, float* dst, int64_t n);
bool quantize_row_scalar(DType t, const float* src, void* dst, int64_t n);

// K-quant quantizers (quant_k.cpp), ggml's reference math (round to nearest,
// no importance matrix).
void quantize_row_q2_k(const float* x, void* y, int64_t n);
void quantize_row_q3_k(const float* x, void* y, int64_t n);
void quantize_row_q4_k(const float* x, void* y, int64_t n);
void quantize_row_q5_k(const float* x, void* y, int64_t n);
void quantize_row_q6_k(const float* x, void* y, int64_t n);
void quantize_row_q8_k(const float* x, void* y, int64_t n);

// The activation format a weight type is multiplied with (what the
// reference engine does): F32 for F32, F16 for F16, BF16 for BF16, Q8_0 for
// Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants. F32 for a type
// without a dot kernel (those are dequantized to F32 first).
DType act_type_for(DType weight);
bool has_dot(DType weight);

// Activation quantizer (scalar twin): Q8_0/Q8_1 as the reference engine's
// x86 path does it (scale 127/amax, round half to even; Q8_1 also stores
// d*sum), Q8_K as its reference quantizer, F16/BF16 round to nearest even.
void quantize_act_row_scalar(DType act, const float* x, void* dst, int64_t n);

}  // namespace tandem::kernels
