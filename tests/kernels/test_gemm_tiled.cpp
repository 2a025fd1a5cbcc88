// Prefill GEMM (gemm_tiled.h): the AVX-512 tiled kernels against the scalar
// twin (gemm_rows_scalar through TANDEM_CPU=scalar) over odd sizes, against
// the row-block kernels of the same path, and bit-identical across thread counts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/gemm_tiled.h"
#include "kernels/kernels.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_internal.h"
#include "kernels/thread_pool.h"
#include "test_util.h"

namespace tandem::kernels {
namespace {
using testing::randn;

using testing::have_avx512;

struct Weights {
  std::vector<unsigned char> q;
  size_t rb = 0;
  Matrix m(DType t, int64_t rows, int64_t cols) const { return Matrix{t, q.data(), rows, cols, rb}; }
};

Weights make_weights(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  const std::vector<float> wf = randn(static_cast<size_t>(rows * cols), seed);
  Weights w;
  w.rb = row_bytes(t, cols);
  w.q.resize(w.rb * rows);
  for (int64_t r = 0; r < rows; ++r) EXPECT_TRUE(quantize_row(t, wf.data() + r * cols, w.q.data() + r * w.rb, cols));
  return w;
}

std::vector<float> run(CpuPath p, bool tiled, const Matrix& m, const std::vector<float>& x, int n_cols,
                       ThreadPool& pool) {
  force_cpu_path(p);
  set_gemm_tiled_enabled(tiled);
  std::vector<float> y(static_cast<size_t>(n_cols) * m.rows, -7.0f);
  matmul(m, x.data(), n_cols, y.data(), pool);
  set_gemm_tiled_enabled(true);
  return y;
}

// Reference: only the float summation order differs (integer block sums and
// per-block scale products are the same), so the bound grows with sqrt(K).
void expect_close(const std::vector<float>& y, const std::vector<float>& ref, int64_t K, const std::string& what) {
  ASSERT_EQ(y.size(), ref.size());
  for (size_t i = 0; i < y.size(); ++i)
    ASSERT_NEAR(y[i], ref[i], 2e-5 * std::sqrt(double(K)) * (1 + std::fabs(ref[i]))) << what << " i " << i;
}

TEST(GemmTiled, EveryTypeMatchesScalarTwinOverOddSizes) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this machine: the tiled path is never taken";
  testing::PathGuard guard;
  ThreadPool pool(2);
  const DType types[] = {DType::F32,  DType::F16,  DType::Q8_0, DType::Q4_0,
                         DType::Q5_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};
  for (DType t : types) {
    ASSERT_NE(gemm_tiled_avx512(t), nullptr) << dtype_name(t);
    const int64_t blk = dtype_info(t).block_elems;
    std::vector<int64_t> ks;
    if (blk == 1) ks = {1, 3, 31, 257};
    else if (blk == 32) ks = {32, 96, 288};
    else ks = {256, 768};
    for (int64_t K : ks)
      for (int64_t rows : {1, 3, 31, 33, 257}) {
        const Weights w = make_weights(t, rows, K, static_cast<uint32_t>(rows * 131 + K));
        const Matrix m = w.m(t, rows, K);
        for (int n_cols : {9, 13, 31, 257}) {
          if (n_cols == 257 && rows == 257 && K > 300) continue;  // keep the scalar reference fast
          const std::vector<float> x = randn(static_cast<size_t>(n_cols) * K, static_cast<uint32_t>(n_cols + 5));
          const std::vector<float> ref = run(CpuPath::kScalar, false, m, x, n_cols, pool);
          const std::vector<float> y = run(CpuPath::kAvx512, true, m, x, n_cols, pool);
          expect_close(y, ref, K,
                       std::string(dtype_name(t)) + " rows " + std::to_string(rows) + " K " + std::to_string(K) +
                           " n_cols " + std::to_string(n_cols));
          if (::testing::Test::HasFatalFailure()) return;
        }
      }
  }
}

TEST(GemmTiled, MatchesRowBlockKernelsOfTheSamePath) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this machine";
  testing::PathGuard guard;
  ThreadPool pool(2);
  for (DType t : {DType::F16, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    const int64_t rows = 70, K = 512;
    const Weights w = make_weights(t, rows, K, 3);
    const std::vector<float> x = randn(size_t(40) * K, 4);
    const std::vector<float> a = run(CpuPath::kAvx512, false, w.m(t, rows, K), x, 40, pool);
    const std::vector<float> b = run(CpuPath::kAvx512, true, w.m(t, rows, K), x, 40, pool);
    EXPECT_LT(testing::rel_rmse(b.data(), a.data(), a.size()), 1e-6) << dtype_name(t);
  }
}

TEST(GemmTiled, BitIdenticalForAnyThreadCount) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this machine";
  testing::PathGuard guard;
  ThreadPool p1(1), p2(2), p3(3);
  for (DType t : {DType::F32, DType::F16, DType::Q8_0, DType::Q6_K, DType::Q5_K}) {
    const int64_t rows = 101, K = 256;
    const Weights w = make_weights(t, rows, K, 9);
    const std::vector<float> x = randn(size_t(23) * K, 10);
    const Matrix m = w.m(t, rows, K);
    const std::vector<float> a = run(CpuPath::kAvx512, true, m, x, 23, p1);
    const std::vector<float> b = run(CpuPath::kAvx512, true, m, x, 23, p2);
    const std::vector<float> c = run(CpuPath::kAvx512, true, m, x, 23, p3);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << dtype_name(t);
    EXPECT_EQ(0, std::memcmp(a.data(), c.data(), a.size() * sizeof(float))) << dtype_name(t);
  }
}

// The decode companion (gemv_tiled_avx512, 1..8 columns; more are split) must compute every
// output with the tiled kernel's float operations in the same order: the
// parity suite runs a prompt whole, in micro-batches and token by token and
// needs identical results. Checked bit for bit per column slice, against the
// scalar twin for accuracy, and across thread counts.
TEST(GemmTiled, DecodeColumnsBitIdenticalToPrefillTiles) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this machine";
  testing::PathGuard guard;
  force_cpu_path(CpuPath::kAvx512);
  ThreadPool p1(1), p3(3);
  const DType types[] = {DType::F32,  DType::F16,  DType::Q8_0, DType::Q4_0,
                         DType::Q5_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};
  for (DType t : types) {
    const GemmTiledFn tiled = gemm_tiled_avx512(t), gemv = gemv_tiled_avx512(t);
    ASSERT_NE(gemv, nullptr) << dtype_name(t);
    const int64_t blk = dtype_info(t).block_elems;
    const std::vector<int64_t> ks = blk == 1 ? std::vector<int64_t>{5, 16, 67} : blk == 32 ? std::vector<int64_t>{32, 288}
                                                                                            : std::vector<int64_t>{256, 512};
    for (int64_t K : ks)
      for (int64_t rows : {1, 15, 17, 70}) {
        const Weights w = make_weights(t, rows, K, static_cast<uint32_t>(rows * 7 + K));
        const Matrix m = w.m(t, rows, K);
        const int n = 13;
        const std::vector<float> x = randn(static_cast<size_t>(n) * K, static_cast<uint32_t>(K + rows), 2.0f);
        std::vector<float> whole(static_cast<size_t>(n) * rows, -1.0f);
        GemmTask tt;
        tt.w = &m;
        tt.n_cols = n;
        tt.y = whole.data();
        tt.act = x.data();
        tt.act_row_bytes = static_cast<size_t>(K) * sizeof(float);
        tiled(tt, p3);
        const std::string what = std::string(dtype_name(t)) + " rows " + std::to_string(rows) + " K " + std::to_string(K);
        const std::vector<float> ref = run(CpuPath::kScalar, false, m, x, n, p1);
        expect_close(whole, ref, K, what + " tiled vs scalar");
        for (int nc : {1, 3, 8, 13})  // 13: more than 8, split inside
          for (ThreadPool* pool : {&p1, &p3})
            for (int c0 = 0; c0 + nc <= n; c0 += nc) {
              std::vector<float> part(static_cast<size_t>(nc) * rows, -2.0f);
              GemmTask g = tt;
              g.n_cols = nc;
              g.y = part.data();
              g.act = x.data() + static_cast<size_t>(c0) * K;
              gemv(g, *pool);
              ASSERT_EQ(0, std::memcmp(part.data(), whole.data() + static_cast<size_t>(c0) * rows,
                                       part.size() * sizeof(float)))
                  << what << " columns " << c0 << ".." << c0 + nc - 1 << " threads " << pool->size();
            }
      }
  }
}

// Through matmul with the tiled path on: one call over all columns equals
// column-at-a-time and 4-column micro-batches bit for bit, for every weight
// type matmul routes to the tiled pair (and for the others too: Q4_K keeps
// the row-block / GEMV kernels, which already agree with each other).
TEST(GemmTiled, MatmulWholeEqualsMicroBatchesAndSingleColumns) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this machine";
  testing::PathGuard guard;
  ThreadPool pool(2);
  for (DType t : {DType::F32, DType::F16, DType::Q8_0, DType::Q4_0, DType::Q5_0, DType::Q4_K, DType::Q5_K,
                  DType::Q6_K}) {
    const int64_t rows = 45, K = dtype_info(t).block_elems == 1 ? 100 : 512;
    const Weights w = make_weights(t, rows, K, 21);
    const Matrix m = w.m(t, rows, K);
    const int n = 11;
    const std::vector<float> x = randn(static_cast<size_t>(n) * K, 22);
    const std::vector<float> whole = run(CpuPath::kAvx512, true, m, x, n, pool);
    for (int ub : {1, 4}) {
      for (int c0 = 0; c0 < n; c0 += ub) {
        const int nc = std::min(ub, n - c0);
        const std::vector<float> xs(x.begin() + static_cast<ptrdiff_t>(c0) * K, x.begin() + static_cast<ptrdiff_t>(c0 + nc) * K);
        const std::vector<float> y = run(CpuPath::kAvx512, true, m, xs, nc, pool);
        if (t == DType::Q8_0) {
          // Q8_0 keeps its VNNI decode GEMV (twice as fast end to end as the
          // tiled GEMV), which adds two blocks per instruction: the same
          // integer dots, f32 partial sums in another order. So equal up to
          // f32 reassociation, not bit for bit (matmul.cpp: tiled_all_cols).
          for (size_t i = 0; i < y.size(); ++i) {
            const float ref = whole[static_cast<size_t>(c0) * rows + i];
            ASSERT_NEAR(y[i], ref, 1e-5f * (1.0f + std::fabs(ref)))
                << "q8_0 micro-batch " << ub << " at column " << c0 << " row " << i;
          }
          continue;
        }
        ASSERT_EQ(0, std::memcmp(y.data(), whole.data() + static_cast<size_t>(c0) * rows, y.size() * sizeof(float)))
            << dtype_name(t) << " micro-batch " << ub << " at column " << c0;
      }
    }
  }
}

// Q8_0 codes at both ends of int8 (-128 is legal in a GGUF file although our
// quantizer never writes it): the u8 = q + 128 re-encoding must cover them.
TEST(GemmTiled, Q8_0ExtremeCodesHandChecked) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this machine";
  testing::PathGuard guard;
  ThreadPool pool(2);
  const int64_t rows = 2, K = 32;
  std::vector<BlockQ8_0> w(rows);
  for (int j = 0; j < 32; ++j) {
    w[0].qs[j] = -128;
    w[1].qs[j] = static_cast<int8_t>(j % 2 ? 127 : -128);
  }
  w[0].d = f32_to_fp16(0.5f);
  w[1].d = f32_to_fp16(0.25f);
  // every column: x = 1.0 everywhere -> Q8_0 activation d = 1/127, codes 127
  const int n_cols = 10;
  std::vector<float> x(size_t(n_cols) * K, 1.0f);
  force_cpu_path(CpuPath::kAvx512);
  std::vector<float> y(size_t(n_cols) * rows);
  matmul(Matrix{DType::Q8_0, w.data(), rows, K, sizeof(BlockQ8_0)}, x.data(), n_cols, y.data(), pool);
  const float da = fp16_to_f32(f32_to_fp16(1.0f / 127.0f));
  for (int c = 0; c < n_cols; ++c) {
    // row 0: 32 * (-128 * 127) * 0.5 * da; row 1: 16 * (127 - 128) * 127 * 0.25 * da
    EXPECT_FLOAT_EQ(y[size_t(c) * rows + 0], float(32 * -128 * 127) * (0.5f * da)) << c;
    EXPECT_FLOAT_EQ(y[size_t(c) * rows + 1], float(16 * -1 * 127) * (0.25f * da)) << c;
  }
}

TEST(GemmTiled, ActivationQuantizersBitIdenticalToScalar) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this machine";
  for (DType act : {DType::Q8_0, DType::Q8_K}) {
    const QuantActFn q = quant_act_tiled_avx512(act);
    ASSERT_NE(q, nullptr);
    const int64_t n = 1024;
    std::vector<float> x = randn(n, 77, 3.0f);
    // ties and edge cases: exact halves after scaling, a zero block, equal +-max
    for (int j = 0; j < 32; ++j) x[j] = float(j - 16) * 0.5f;
    for (int j = 256; j < 512; ++j) x[j] = 0.0f;
    x[600] = 9.0f;
    x[601] = -9.0f;
    x[700] = -9.5f;
    x[790] = -12.0f;
    x[800] = 12.0f;
    std::vector<unsigned char> a(row_bytes(act, n), 0), b(row_bytes(act, n), 0);
    quantize_act_row_scalar(act, x.data(), a.data(), n);
    q(act, x.data(), b.data(), n);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size())) << dtype_name(act);
  }
}

}  // namespace
}  // namespace tandem::kernels
