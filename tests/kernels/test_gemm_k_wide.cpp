// Wide AVX-512 VNNI kernels for Q4_K / Q5_K / Q6_K (gemm_k_wide.h) against
// the row-block kernels of gemm_q_simd.inc, which they must reproduce BIT FOR
// BIT (the decode GEMV matches the row-block kernels, so prefill and stepwise
// runs of a model agree only if these do too). Weights and activations are
// raw random blocks (every quant, scale, min and high-bit pattern, plus an
// all-extremes block), shapes around the kernel's row pairs / row blocks /
// column groups, and the results must not depend on the thread count.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/fp16.h"
#include "kernels/gemm_internal.h"
#include "kernels/gemm_k_wide.h"
#include "kernels/gemv_internal.h"
#include "kernels/kernels.h"
#include "kernels/quant_blocks.h"
#include "kernels/thread_pool.h"
#include "test_util.h"

namespace tandem::kernels {
namespace {

bool has_avx512() {
  for (CpuPath p : available_cpu_paths())
    if (p == CpuPath::kAvx512) return true;
  return false;
}

bool has_avx2() {
  for (CpuPath p : available_cpu_paths())
    if (p == CpuPath::kAvx2) return true;
  return false;
}

// Random raw blocks: every byte random, then finite f16 super-block scales
// (random magnitudes over a few decades). extreme = all quant/scale bytes 0xFF
// (Q4_K/Q5_K: q = 15/31, scales = mins = 63; Q6_K: q = 63, scales = -1) with
// one row of Q6_K scales at -128.
std::vector<unsigned char> raw_weights(DType t, int64_t rows, int64_t cols, uint32_t seed, bool extreme) {
  const size_t rb = row_bytes(t, cols);
  std::vector<unsigned char> q(rb * rows);
  std::mt19937 rng(seed);
  for (unsigned char& b : q) b = extreme ? 0xFF : static_cast<unsigned char>(rng());
  std::uniform_real_distribution<float> mag(-3.0f, 1.0f);
  auto f16 = [&] { return f32_to_fp16((rng() & 1 ? -1.0f : 1.0f) * std::pow(10.0f, mag(rng))); };
  const int64_t nb = cols / 256;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      unsigned char* blk = q.data() + r * rb;
      if (t == DType::Q4_K) {
        BlockQ4_K* x = reinterpret_cast<BlockQ4_K*>(blk) + b;
        x->d = f16(); x->dmin = f16();
      } else if (t == DType::Q5_K) {
        BlockQ5_K* x = reinterpret_cast<BlockQ5_K*>(blk) + b;
        x->d = f16(); x->dmin = f16();
      } else {
        BlockQ6_K* x = reinterpret_cast<BlockQ6_K*>(blk) + b;
        x->d = f16();
        if (extreme && r == 0) std::memset(x->scales, 0x80, sizeof x->scales);
      }
    }
  return q;
}

// Random Q8_K rows with consistent bsums; extreme = every quant -128.
std::vector<unsigned char> raw_act(int64_t cols, int n_cols, uint32_t seed, bool extreme) {
  const int64_t nb = cols / 256;
  std::vector<unsigned char> a(static_cast<size_t>(nb * n_cols) * sizeof(BlockQ8_K));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(1e-4f, 0.05f);
  BlockQ8_K* blk = reinterpret_cast<BlockQ8_K*>(a.data());
  for (int64_t i = 0; i < nb * n_cols; ++i) {
    blk[i].d = d(rng);
    for (int k = 0; k < 256; ++k) blk[i].qs[k] = extreme ? int8_t{-128} : static_cast<int8_t>(rng());
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int k = 0; k < 16; ++k) s += blk[i].qs[16 * g + k];
      blk[i].bsums[g] = static_cast<int16_t>(s);
    }
  }
  return a;
}

struct Product {
  Matrix w;
  GemmTask task;
};

std::vector<float> run_rows(GemmRowsFn fn, const Product& p) {
  std::vector<float> y(static_cast<size_t>(p.task.n_cols * p.w.rows), -7.0f);
  GemmTask t = p.task;
  t.y = y.data();
  fn(t, 0, p.w.rows);
  return y;
}

std::vector<float> run_wide(const Product& p, ThreadPool& pool) {
  std::vector<float> y(static_cast<size_t>(p.task.n_cols * p.w.rows), -7.0f);
  GemmTask t = p.task;
  t.y = y.data();
  gemm_k_wide_avx512(p.w.type)(t, pool);
  return y;
}

void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    uint32_t ua, ub;
    std::memcpy(&ua, &a[i], 4);
    std::memcpy(&ub, &b[i], 4);
    ASSERT_EQ(ua, ub) << what << " element " << i << ": " << a[i] << " vs " << b[i];
  }
}

constexpr DType kTypes[] = {DType::Q4_K, DType::Q5_K, DType::Q6_K};

// Rows around the row pairs and the 32-row blocks, 1..8 super-blocks, columns
// around the 16-column groups (odd counts included); the AVX-512 and AVX2
// instantiations of the row-block kernel are both the reference.
TEST(GemmKWide, BitIdenticalToRowBlockKernels) {
  if (!has_avx512()) GTEST_SKIP() << "no AVX-512 VNNI path on this machine";
  ThreadPool pool(2);
  const int64_t rows_list[] = {1, 2, 3, 17, 31, 32, 33, 64, 70};
  const int64_t cols_list[] = {256, 512, 768, 2048};
  const int ncols_list[] = {9, 16, 17, 31, 48, 65};
  int cases = 0;
  for (DType t : kTypes)
    for (int64_t rows : rows_list)
      for (int64_t cols : cols_list) {
        const std::vector<unsigned char> wq = raw_weights(t, rows, cols, static_cast<uint32_t>(rows * 7 + cols), false);
        for (int n_cols : ncols_list) {
          if (rows * cols * n_cols > 4'000'000 && n_cols > 17) continue;  // keep the test fast
          const std::vector<unsigned char> aq = raw_act(cols, n_cols, static_cast<uint32_t>(n_cols + cols), false);
          Product p{Matrix{t, wq.data(), rows, cols, row_bytes(t, cols)}, {}};
          p.task.w = &p.w;
          p.task.act = aq.data();
          p.task.act_row_bytes = row_bytes(DType::Q8_K, cols);
          p.task.n_cols = n_cols;
          const std::string what = std::string(dtype_name(t)) + " rows " + std::to_string(rows) + " cols " +
                                   std::to_string(cols) + " n_cols " + std::to_string(n_cols);
          const std::vector<float> y = run_wide(p, pool);
          expect_same_bits(y, run_rows(gemm_rows_avx512(t), p), what + " vs avx512 row-block");
          if (has_avx2()) expect_same_bits(y, run_rows(gemm_rows_avx2(t), p), what + " vs avx2 row-block");
          ++cases;
        }
      }
  EXPECT_GT(cases, 400);
}

// Many columns (a 600-token prompt) and the all-extremes blocks: q = 15/31/63,
// scales = mins = 63 (Q6_K -1 and -128), activations all -128 (the largest
// |dpbusd| lane, 4*63*128, must still fit the i16 the scale multiply sees).
TEST(GemmKWide, ManyColumnsAndExtremeBlocks) {
  if (!has_avx512()) GTEST_SKIP() << "no AVX-512 VNNI path on this machine";
  ThreadPool pool(2);
  for (DType t : kTypes)
    for (bool extreme : {false, true}) {
      const int64_t rows = 37, cols = 512;
      const int n_cols = extreme ? 23 : 600;
      const std::vector<unsigned char> wq = raw_weights(t, rows, cols, 99, extreme);
      const std::vector<unsigned char> aq = raw_act(cols, n_cols, 5, extreme);
      Product p{Matrix{t, wq.data(), rows, cols, row_bytes(t, cols)}, {}};
      p.task.w = &p.w;
      p.task.act = aq.data();
      p.task.act_row_bytes = row_bytes(DType::Q8_K, cols);
      p.task.n_cols = n_cols;
      const std::vector<float> y = run_wide(p, pool);
      expect_same_bits(y, run_rows(gemm_rows_avx512(t), p),
                       std::string(dtype_name(t)) + (extreme ? " extreme" : " 600 columns"));
    }
}

// The decode GEMVs (gemv_internal.h: Q4_K, Q5_K, Q6_K) reproduce the row-block
// kernels bit for bit for 1..8 columns, on raw random blocks and on the
// all-extremes blocks, over row ranges that start mid-matrix (matmul hands
// each thread one contiguous range).
TEST(GemvK, DecodeGemvBitIdenticalToRowBlockKernels) {
  if (!has_avx512()) GTEST_SKIP() << "no AVX-512 VNNI path on this machine";
  int cases = 0;
  for (DType t : kTypes) {
    const GemmRowsFn gemv = gemv_rows_avx512(t);
    ASSERT_NE(gemv, nullptr) << dtype_name(t);
    for (bool extreme : {false, true})
      for (int64_t cols : {256, 768, 2048})
        for (int n_cols = 1; n_cols <= kGemvMaxCols; ++n_cols) {
          const int64_t rows = 19;
          const std::vector<unsigned char> wq = raw_weights(t, rows, cols, static_cast<uint32_t>(cols + n_cols), extreme);
          const std::vector<unsigned char> aq = raw_act(cols, n_cols, static_cast<uint32_t>(3 * n_cols), extreme);
          Product p{Matrix{t, wq.data(), rows, cols, row_bytes(t, cols)}, {}};
          p.task.w = &p.w;
          p.task.act = aq.data();
          p.task.act_row_bytes = row_bytes(DType::Q8_K, cols);
          p.task.n_cols = n_cols;
          const std::string what = std::string(dtype_name(t)) + (extreme ? " extreme" : " random") + " cols " +
                                   std::to_string(cols) + " n_cols " + std::to_string(n_cols);
          const std::vector<float> ref = run_rows(gemm_rows_avx512(t), p);
          expect_same_bits(run_rows(gemv, p), ref, what);
          // two ranges, split mid-matrix
          std::vector<float> y(ref.size(), -7.0f);
          GemmTask task = p.task;
          task.y = y.data();
          gemv(task, 0, 7);
          gemv(task, 7, rows);
          expect_same_bits(y, ref, what + " split at row 7");
          ++cases;
        }
  }
  EXPECT_EQ(cases, 3 * 2 * 3 * kGemvMaxCols);
}

std::vector<float> matmul_y(const Matrix& w, const std::vector<float>& x, int n_cols, ThreadPool& pool) {
  std::vector<float> y(static_cast<size_t>(n_cols * w.rows), -7.0f);
  matmul(w, x.data(), n_cols, y.data(), pool);
  return y;
}

// Through matmul(): the wide kernel (switch on) gives the bits of the
// row-block kernel (switch off) and of the AVX2 path, for 1, 2 and 3 threads,
// and of decode-sized slices (<= 8 columns: the GEMV kernels), so a prompt run
// whole or token by token gives the same logits.
TEST(GemmKWide, MatmulSwitchThreadsAndDecodeSlicesAgree) {
  if (!has_avx512()) GTEST_SKIP() << "no AVX-512 VNNI path on this machine";
  testing::PathGuard guard;
  const bool saved = kquant_wide_enabled();
  ThreadPool p1(1), p2(2), p3(3);
  for (DType t : kTypes) {
    const int64_t rows = 45, cols = 1024;
    const int n_cols = 27;
    const std::vector<float> wf = testing::randn(static_cast<size_t>(rows * cols), 11);
    std::vector<unsigned char> wq(row_bytes(t, cols) * rows);
    for (int64_t r = 0; r < rows; ++r)
      quantize_row(t, wf.data() + r * cols, wq.data() + r * row_bytes(t, cols), cols);
    const Matrix w{t, wq.data(), rows, cols, row_bytes(t, cols)};
    const std::vector<float> x = testing::randn(static_cast<size_t>(n_cols * cols), 12);
    const std::string name(dtype_name(t));

    force_cpu_path(CpuPath::kAvx512);
    set_kquant_wide_enabled(true);
    const std::vector<float> y = matmul_y(w, x, n_cols, p2);
    expect_same_bits(y, matmul_y(w, x, n_cols, p1), name + " 1 thread");
    expect_same_bits(y, matmul_y(w, x, n_cols, p3), name + " 3 threads");
    // decode slices of 8, 8, 8, 3 columns
    std::vector<float> ys(y.size());
    for (int c0 = 0; c0 < n_cols; c0 += 8) {
      const int nc = std::min(8, n_cols - c0);
      const std::vector<float> xs(x.begin() + c0 * cols, x.begin() + (c0 + nc) * cols);
      const std::vector<float> part = matmul_y(w, xs, nc, p2);
      std::copy(part.begin(), part.end(), ys.begin() + c0 * rows);
    }
    expect_same_bits(y, ys, name + " decode slices");
    set_kquant_wide_enabled(false);
    expect_same_bits(y, matmul_y(w, x, n_cols, p2), name + " switch off (row-block)");
    set_kquant_wide_enabled(true);
    if (has_avx2()) {
      force_cpu_path(CpuPath::kAvx2);
      expect_same_bits(y, matmul_y(w, x, n_cols, p2), name + " avx2 path");
    }
    // and close to the scalar twin (a sanity check that both are right, not just equal)
    force_cpu_path(CpuPath::kScalar);
    const std::vector<float> ref = matmul_y(w, x, n_cols, p2);
    EXPECT_LT(testing::rel_rmse(y.data(), ref.data(), y.size()), 1e-5) << name;
  }
  set_kquant_wide_enabled(saved);
}

}  // namespace
}  // namespace tandem::kernels
