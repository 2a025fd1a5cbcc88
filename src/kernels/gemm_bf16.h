#pragma once
// BF16 weights × BF16 activations in the reference engine's exact
// accumulation order.
//
// Why exact: with BF16 weights every matmul input is rounded to BF16, and a
// last-bit difference in an f32 value upstream flips the BF16 rounding of
// some elements, which changes the next matmul by ~1e-3 relative, which flips
// more roundings... A different (equally accurate) summation order therefore
// drifts ~1e-5 NMSE away from the reference's logits. Mirroring its order
// keeps the products bit-identical.
//
// The reference (ggml CPU backend on an AVX-512 BF16 machine) forms a BF16
// dot product in one of two layouts:
//  * kSgemm — prompt-sized products (>= 2 activation columns, K % 32 == 0,
//    rows % 4 == 0): 16 f32 lanes; for each 32-element chunk c, lane j adds
//    w·x of element 32c+2j+1, then of element 32c+2j (vdpbf16ps order: each
//    addition rounded to nearest even, products exact); then the 16 lanes are
//    summed as a tree (8+8, 4+4, 2+2, 1+1: _mm512_reduce_add_ps).
//  * kVecDot — everything else (single column, odd shapes): two such lane
//    sets, one over the chunks 64s..64s+31 and one over 64s+32..64s+63 for
//    every full 64-element step; each tree-summed, both added in double,
//    the tail elements (f32 products) added in double; rounded to f32.
// Denormal inputs/results: vdpbf16ps flushes them to zero; the scalar twin
// does the same; the AVX-512F fallback without the BF16 extension (FMA on the
// same lanes) does not — identical for every normal input.
#include <cstdint>

#include "kernels/gemm_internal.h"

namespace tandem::kernels {

enum class Bf16Layout { kSgemm, kVecDot };

// The layout the reference uses for a product of this shape.
Bf16Layout bf16_layout(int64_t rows, int64_t cols, int n_cols);

// Scalar twins: one dot product of n BF16 weights with n BF16 activations.
float dot_bf16_sgemm_scalar(const uint16_t* w, const uint16_t* x, int64_t n);
float dot_bf16_vecdot_scalar(const uint16_t* w, const uint16_t* x, int64_t n);

// Rows kernels over a GemmTask whose activations are BF16 (one per layout).
// Scalar: always available. AVX-512: vdpbf16ps when the CPU has it, else FMA.
GemmRowsFn gemm_rows_bf16_scalar(Bf16Layout layout);
GemmRowsFn gemm_rows_bf16_avx512(Bf16Layout layout);

}  // namespace tandem::kernels
