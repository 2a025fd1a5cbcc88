// matmul / get_row / (de)quantize_row entry points: one dispatch per call.
#include <algorithm>
#include <cstdlib>
#include <vector>

#include "core/env.h"
#include "core/profiler.h"
#include "kernels/act_fast.h"
#include "kernels/cpu.h"
#include "kernels/gemm_bf16.h"
#include "kernels/gemm_internal.h"
#include "kernels/gemm_k_wide.h"
#include "kernels/gemm_tiled.h"
#include "kernels/gemv_internal.h"
#include "kernels/kernels.h"
#include "kernels/quant_internal.h"
#include "kernels/thread_pool.h"

namespace tandem::kernels {
namespace {

// Rows per work item. GEMV: small blocks balance threads. Multi-column: the
// kernels sweep all activation columns once per row block, so larger blocks
// (weights of the block stay in L2) cut the re-reads of the activations.
constexpr int64_t kRowBlockGemv = 16;
constexpr int64_t kRowBlockGemm = 64;

// Per-thread scratch for the converted activations (grows, never shrinks).
std::vector<unsigned char>& act_scratch() {
  thread_local std::vector<unsigned char> buf;
  return buf;
}

// Weight types without a dot kernel: dequantize each row, then an F32 dot.
void gemm_rows_dequant(const GemmTask& t, int64_t r0, int64_t r1) {
  const Matrix& w = *t.w;
  thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(w.cols));
  const char* base = static_cast<const char*>(w.data);
  for (int64_t r = r0; r < r1; ++r) {
    dequantize_row_scalar(w.type, base + static_cast<size_t>(r) * w.row_stride, row.data(), w.cols);
    for (int c = 0; c < t.n_cols; ++c)
      t.y[static_cast<size_t>(c) * w.rows + r] =
          dot_scalar(DType::F32, row.data(), static_cast<const char*>(t.act) + c * t.act_row_bytes, w.cols);
  }
}

// AVX-512: the tiled kernels' quantizers (Q8_0, Q8_K), byte for byte the
// scalar ones (GemmTiled.ActivationQuantizersBitIdenticalToScalar), for every
// matmul path; with the scalar code a K-quant decode step spent ~2 % of its
// time quantizing (perf, 350m Q4_K_M). Other paths and types: scalar.
QuantActFn quant_act_for(CpuPath p, DType act) {
  const QuantActFn f = p == CpuPath::kAvx512 ? quant_act_tiled_avx512(act) : nullptr;
  return f ? f : quantize_act_row_scalar;
}

GemmRowsFn gemm_for(CpuPath p, DType w) {
  if (!has_dot(w)) return gemm_rows_dequant;
  GemmRowsFn f = nullptr;
  if (p == CpuPath::kAvx512) f = gemm_rows_avx512(w);
  if (!f && p >= CpuPath::kAvx2) f = gemm_rows_avx2(w);
  return f ? f : gemm_rows_scalar;
}

// Weight types matmul sends to the tiled pair (gemm_tiled.h) for every column
// count, so prefill == stepwise bit for bit. Per type, the order kept is the
// one closer to the reference goldens (docs/parity.md): Q4_K is left out, its
// GEMV / row-block order (which already agree with each other) matches the
// reference better than the tiled order (1.4e-13 vs 3.6e-4 NMSE on the
// Q4_K_M fixture), so it keeps those kernels for all column counts.
// Types whose tiled pair (prefill kernel + tiled GEMV) is at least as fast as
// the decode GEMV kernels for 1..8 columns: measured end to end with
// `tandem bench` on the 350m preset, F16 tg32 31.8 vs 31.7 tok/s in session 2
// (session 3's tiled F16 GEMV is faster again). Q5_K/Q6_K tiled GEMVs are
// 1.2-1.6x slower than their decode kernels at one column, so those keep the
// decode kernels and, to keep prefill == stepwise bit for bit, the row-block
// kernels for prompts too.
// Q8_0 is on the tiled pair by default since session 3: measured on a quiet
// machine (docs/benchmarks.md, "Beside the reference engine (session 3)"),
// prompts run 3.8x (350m) / 4.3x (1b) faster and 4-sequence decoding 12-19 %
// (350m) / 18-61 % (1b) faster, for 12-14 % slower single-sequence decoding
// (alternating A/B runs; the tiled GEMV reads a 16-row panel per step, the
// VNNI GEMV streams rows). TANDEM_TILED_Q8_0=0 (read once) restores the
// row-block + VNNI GEMV kernels.
bool tiled_q8_0() {
  static const bool on = env_switch_on("TANDEM_TILED_Q8_0");
  return on;
}

// Single-column Q8_0 products (one sequence decoding) on the VNNI GEMV
// (gemv_q8_0_avx512.cpp) instead of the tiled GEMV. The tiled GEMV sums each
// output in the tiled prefill order (so prefill == decode bit for bit), but
// gathering each block's scale row by row costs it about a third of its time
// from cache, and from DRAM it falls further behind: single-sequence decode
// runs 11-26 % faster on the VNNI GEMV (350m / 1b, alternating A/B runs in one
// session; docs/benchmarks.md, session 6). With 2+
// columns the tiled GEMV is the faster one (1.5-2x at 4 and 8 sequences), so
// it keeps those. The price: one sequence decoding token by token agrees with
// its prompt run whole, or with the same tokens decoded beside other
// sequences, to float rounding (NMSE below 1e-12 on the parity fixtures'
// self-consistency checks, bound 1e-8) instead of bit for bit.
// TANDEM_Q8_0_GEMV=0 (read once) restores the tiled GEMV for one column.
bool q8_0_vnni_decode() {
  static const bool on = env_switch_on("TANDEM_Q8_0_GEMV");
  return on;
}

bool tiled_all_cols(DType w, int n_cols) {
  switch (w) {
    case DType::F32: case DType::F16: case DType::Q4_0: case DType::Q5_0: return true;
    case DType::Q8_0: return tiled_q8_0() && (n_cols > 1 || !q8_0_vnni_decode());
    default: return false;
  }
}

}  // namespace

void matmul(const Matrix& w, const float* x, int n_cols, float* y, ThreadPool& pool) {
  TANDEM_PROF_OP(kMatmul);  // bench --profile (core/profiler.h)
  if (n_cols <= 0 || w.rows <= 0) return;
  const CpuPath path = active_cpu_path();
  const DType at = has_dot(w.type) ? act_type_for(w.type) : DType::F32;
  const GemmRowsFn rows_fn = gemm_for(path, w.type);

  // Packed register-tiled kernels that convert the f32 activations themselves
  // (gemm_tiled.h). When they are on they take every column count of their
  // weight types, decode included: each output is then summed in one and the
  // same float order whether the prompt runs whole, in micro-batches or token
  // by token (the parity suite's self-consistency, NMSE <= 1e-8, needs it).
  // The one exception is Q8_0 with one column, which goes to the VNNI GEMV
  // below (q8_0_vnni_decode says why and what it costs).
  if (path == CpuPath::kAvx512 && gemm_tiled_enabled() && tiled_all_cols(w.type, n_cols)) {
    if (const GemmTiledFn tiled = n_cols > kGemvMaxCols ? gemm_tiled_avx512(w.type) : gemv_tiled_avx512(w.type)) {
      GemmTask tt;
      tt.w = &w;
      tt.n_cols = n_cols;
      tt.y = y;
      tt.act = x;
      tt.act_row_bytes = static_cast<size_t>(w.cols) * sizeof(float);
      tiled(tt, pool);
      return;
    }
  }

  // 1. Activations into the dot format (F32 weights use x as is).
  GemmTask task;
  task.w = &w;
  task.n_cols = n_cols;
  task.y = y;
  if (at == DType::F32) {
    task.act = x;
    task.act_row_bytes = static_cast<size_t>(w.cols) * sizeof(float);
  } else {
    const size_t rb = row_bytes(at, w.cols);
    std::vector<unsigned char>& buf = act_scratch();
    if (buf.size() < rb * static_cast<size_t>(n_cols)) buf.resize(rb * static_cast<size_t>(n_cols));
    unsigned char* dst = buf.data();
    const QuantActFn q = quant_act_for(path, at);
    const int64_t cols = w.cols;
    auto quant = [&](int64_t c0, int64_t c1, int) {
      for (int64_t c = c0; c < c1; ++c) q(at, x + c * cols, dst + c * rb, cols);
    };
    if (n_cols >= 4 * pool.size()) pool.parallel_for(n_cols, quant);
    else quant(0, n_cols, 0);
    task.act = dst;
    task.act_row_bytes = rb;
  }

  // BF16 weights: the reference engine's exact accumulation order whatever
  // the column count (gemm_bf16.h says why a different order drifts).
  if (w.type == DType::BF16) {
    const Bf16Layout layout = bf16_layout(w.rows, w.cols, n_cols);
    const GemmRowsFn bf = path == CpuPath::kAvx512 ? gemm_rows_bf16_avx512(layout) : gemm_rows_bf16_scalar(layout);
    const int64_t brb = n_cols >= 8 ? kRowBlockGemm : kRowBlockGemv;
    pool.parallel_for((w.rows + brb - 1) / brb, [&](int64_t b0, int64_t b1, int) {
      for (int64_t b = b0; b < b1; ++b) bf(task, b * brb, std::min(w.rows, (b + 1) * brb));
    });
    return;
  }

  // Q4_K / Q5_K / Q6_K prompts: the wide VNNI kernels (gemm_k_wide.h), bit-identical
  // to the row-block kernels below (so decode's GEMV still matches prefill);
  // TANDEM_KQUANT_WIDE=0 restores the row-block kernels.
  if (n_cols > kGemvMaxCols && path == CpuPath::kAvx512 && kquant_wide_enabled()) {
    if (const GemmWideFn wide = gemm_k_wide_avx512(w.type)) {
      wide(task, pool);
      return;
    }
  }

  // 2. Rows split statically across the pool; every y element is computed by
  //    exactly one thread with the same code, so results do not depend on it.
  //    Decode (<= 4 columns, or a dedicated GEMV kernel that sweeps all its
  //    columns at once): one call per thread over its whole row range.
  const GemmRowsFn gemv_fn =
      (n_cols <= kGemvMaxCols && path == CpuPath::kAvx512 && decode_fast_enabled()) ? gemv_rows_avx512(w.type)
                                                                                  : nullptr;
  if (gemv_fn || n_cols <= 4) {
    const GemmRowsFn fn = gemv_fn ? gemv_fn : rows_fn;
    const int64_t n_blocks = (w.rows + kRowBlockGemv - 1) / kRowBlockGemv;
    // balanced: each row is computed by the same code whichever thread runs it
    pool.parallel_for_balanced(n_blocks, 4, [&](int64_t b0, int64_t b1, int) {
      fn(task, b0 * kRowBlockGemv, std::min(w.rows, b1 * kRowBlockGemv));
    });
    return;
  }
  const int64_t rb = n_cols >= 8 ? kRowBlockGemm : kRowBlockGemv;
  const int64_t n_blocks = (w.rows + rb - 1) / rb;
  pool.parallel_for(n_blocks, [&](int64_t b0, int64_t b1, int) {
    // one row block at a time, so each block's sweep over the columns reuses its weights
    for (int64_t b = b0; b < b1; ++b) rows_fn(task, b * rb, std::min(w.rows, (b + 1) * rb));
  });
}

void get_row(const Matrix& w, int64_t id, float* out) {
  TANDEM_PROF_OP(kEmbed);  // bench --profile (core/profiler.h)
  dequantize_row(w.type, static_cast<const char*>(w.data) + static_cast<size_t>(id) * w.row_stride, out, w.cols);
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) { dequantize_row_scalar(t, src, dst, n); }

bool quantize_row(DType t, const float* src, void* dst, int64_t n) {
  return quantize_row_scalar(t, src, dst, n);
}

}  // namespace tandem::kernels
