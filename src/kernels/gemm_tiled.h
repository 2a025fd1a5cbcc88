#pragma once
// Register-tiled GEMM for many activation columns (prompt prefill).
//
// For more than kGemvMaxCols columns matmul() hands the whole product to a
// tiled kernel when the active CPU path has one for the weight type (and the
// type is routed here, matmul.cpp: tiled_all_cols); fewer columns go to the
// decode companion gemv_tiled_avx512, which keeps the same per-output order. The
// task's act is the raw f32 activations ([n_cols][K], act_row_bytes = 4K).
// The tiled kernels
//  * convert the activations to the weight type's dot format (quant_internal.h:
//    act_type_for; bit-identical to quantize_act_row_scalar) and repack them
//    once per call into column groups (shared by all threads, read-only after),
//  * split the weight rows into fixed panels of kTiledRows rows (panel
//    boundaries do not depend on the thread count), repack each panel into a
//    K-major layout in a per-thread buffer, and run an outer-product
//    microkernel (rows along the vector lanes, one broadcast per column).
// Every y element is produced by one panel × column-group tile with the
// same code whatever the thread count, so results are deterministic. The
// scalar twin is gemm_rows_scalar (dot_scalar.cpp), the same integer block
// sums; only the float summation order differs.
#include "kernels/gemm_internal.h"

namespace tandem::kernels {

class ThreadPool;

inline constexpr int kTiledRows = 32;  // weight rows per panel (2 zmm of f32 / i32 lanes)

using GemmTiledFn = void (*)(const GemmTask& t, ThreadPool& pool);

// nullptr when the AVX-512 path has no tiled kernel for weight type w.
// Types: F32, F16 (f32 FMA), Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K (VNNI). BF16
// goes to gemm_bf16.h (it must follow the reference's exact order).
GemmTiledFn gemm_tiled_avx512(DType w);

// Decode companion (1..8 columns, same task layout): every output computed
// with exactly the float operations of the tiled kernel, in the same order
// (rows along the lanes, no repack), so prefill and stepwise runs agree bit
// for bit. nullptr when gemm_tiled_avx512(w) is.
GemmTiledFn gemv_tiled_avx512(DType w);

// AVX-512 activation quantizers for Q8_0 and Q8_K (nullptr for other types),
// bit-identical to quantize_act_row_scalar; the tiled kernels use them.
QuantActFn quant_act_tiled_avx512(DType act);

// On by default; TANDEM_GEMM_TILED=0 turns it off. When on, matmul() sends
// every column count of the types it routes here (matmul.cpp: tiled_all_cols)
// to the tiled pair: > kGemvMaxCols columns to gemm_tiled_avx512, fewer to
// gemv_tiled_avx512, so prefill and decode agree bit for bit (the parity
// suite requires whole-prompt, micro-batch and stepwise logits to agree to
// 1e-8). Off: the row-block / GEMV kernels take every column count. Tests and
// benchmarks may flip it between calls (not while a matmul runs).
bool gemm_tiled_enabled();
void set_gemm_tiled_enabled(bool on);

}  // namespace tandem::kernels
