// Tiled-order decode GEMV (gemm_tiled.h: gemv_tiled_avx512, 1..8 columns)
// against the prefill kernel it must agree with bit for bit (gemm_tiled_avx512,
// run_q / run_f: per output, exact integer sub-block sums, then
// fma(float(isum), scale_w * d_a, acc) sequentially over sub-blocks; float
// types: sequential fma over k), for every column count 1..8 and odd shapes
// (row counts around the 16-row panels, a single block, odd block counts),
// any thread count; and against the scalar twin (gemm_rows_scalar through
// TANDEM_CPU=scalar), which sums in another float order, within a bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "core/fp16.h"
#include "kernels/gemm_tiled.h"
#include "kernels/kernels.h"
#include "kernels/quant_blocks.h"
#include "kernels/thread_pool.h"
#include "test_util.h"

namespace tandem::kernels {
namespace {
using testing::randn;

using testing::have_avx512;

std::vector<unsigned char> quantized(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  const std::vector<float> wf = randn(static_cast<size_t>(rows * cols), seed);
  const size_t rb = row_bytes(t, cols);
  std::vector<unsigned char> q(rb * rows);
  for (int64_t r = 0; r < rows; ++r) EXPECT_TRUE(quantize_row(t, wf.data() + r * cols, q.data() + r * rb, cols));
  return q;
}

// Q8_0 blocks with random raw codes over the whole int8 range (-128 included,
// which our quantizer never writes but a GGUF file may hold) and random scales.
std::vector<unsigned char> raw_q8_0(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> code(-128, 127);
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  std::vector<BlockQ8_0> b(static_cast<size_t>(rows * cols / 32));
  for (BlockQ8_0& x : b) {
    x.d = f32_to_fp16(scale(rng));
    for (int8_t& q : x.qs) q = static_cast<int8_t>(code(rng));
  }
  std::vector<unsigned char> out(b.size() * sizeof(BlockQ8_0));
  std::memcpy(out.data(), b.data(), out.size());
  return out;
}

std::vector<float> call(GemmTiledFn fn, const Matrix& m, const float* x, int n, ThreadPool& pool) {
  std::vector<float> y(static_cast<size_t>(n) * m.rows, -3.0f);
  GemmTask t;
  t.w = &m;
  t.n_cols = n;
  t.y = y.data();
  t.act = x;
  t.act_row_bytes = static_cast<size_t>(m.cols) * sizeof(float);
  fn(t, pool);
  return y;
}

std::vector<float> scalar_twin(const Matrix& m, const float* x, int n, ThreadPool& pool) {
  force_cpu_path(CpuPath::kScalar);
  set_gemm_tiled_enabled(false);
  std::vector<float> y(static_cast<size_t>(n) * m.rows, -5.0f);
  matmul(m, x, n, y.data(), pool);
  set_gemm_tiled_enabled(true);
  force_cpu_path(CpuPath::kAvx512);
  return y;
}

void check_type(DType t, bool raw) {
  ThreadPool p1(1), p2(2);
  const int64_t blk = dtype_info(t).block_elems;
  const std::vector<int64_t> ks = blk == 1    ? std::vector<int64_t>{3, 16, 47, 160}
                                  : blk == 32 ? std::vector<int64_t>{32, 224, 800}
                                              : std::vector<int64_t>{256, 768};
  const GemmTiledFn gemm = gemm_tiled_avx512(t), gemv = gemv_tiled_avx512(t);
  ASSERT_NE(gemm, nullptr) << dtype_name(t);
  ASSERT_NE(gemv, nullptr) << dtype_name(t);
  for (int64_t K : ks)
    for (int64_t rows : {1, 5, 16, 31, 33, 130}) {
      const uint32_t seed = static_cast<uint32_t>(rows * 1009 + K);
      const std::vector<unsigned char> q = raw ? raw_q8_0(rows, K, seed) : quantized(t, rows, K, seed);
      const Matrix m{t, q.data(), rows, K, row_bytes(t, K)};
      const std::vector<float> x = randn(static_cast<size_t>(8) * K, seed + 1, 1.5f);
      const std::vector<float> ref = scalar_twin(m, x.data(), 8, p1);
      for (int nc = 1; nc <= 8; ++nc) {
        const std::string what = std::string(dtype_name(t)) + (raw ? " raw" : "") + " rows " + std::to_string(rows) +
                                 " K " + std::to_string(K) + " columns " + std::to_string(nc);
        const std::vector<float> a = call(gemm, m, x.data(), nc, p2);  // prefill kernel on the same nc columns
        const std::vector<float> g1 = call(gemv, m, x.data(), nc, p1);
        const std::vector<float> g2 = call(gemv, m, x.data(), nc, p2);
        ASSERT_EQ(0, std::memcmp(a.data(), g1.data(), a.size() * sizeof(float))) << what << " (1 thread)";
        ASSERT_EQ(0, std::memcmp(a.data(), g2.data(), a.size() * sizeof(float))) << what << " (2 threads)";
        for (size_t i = 0; i < g1.size(); ++i)  // the scalar twin: another float order, same integer sums
          ASSERT_NEAR(g1[i], ref[i], 2e-5 * std::sqrt(double(K)) * (1 + std::fabs(ref[i]))) << what << " i " << i;
      }
    }
}

TEST(GemvTiled, EqualsPrefillKernelBitForBitForOneToEightColumns) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this machine: the tiled pair is never taken";
  testing::PathGuard guard;
  force_cpu_path(CpuPath::kAvx512);
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q5_0, DType::F16, DType::F32, DType::Q4_K, DType::Q5_K,
                  DType::Q6_K}) {
    check_type(t, false);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(GemvTiled, Q8_0RawCodesOverTheWholeInt8Range) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this machine";
  testing::PathGuard guard;
  force_cpu_path(CpuPath::kAvx512);
  check_type(DType::Q8_0, true);
}

// matmul routes 1..8 columns of the tiled set (matmul.cpp: tiled_all_cols)
// to the tiled GEMV and more to the prefill kernel: a prompt run whole equals
// the same columns one by one.
TEST(GemvTiled, MatmulDecodeEqualsPrefillForTheTiledSet) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this machine";
  testing::PathGuard guard;
  force_cpu_path(CpuPath::kAvx512);
  ThreadPool pool(2);
  for (DType t : {DType::F16, DType::Q4_0, DType::Q5_0}) {
    const int64_t rows = 77, K = t == DType::F16 ? 200 : 320;
    const std::vector<unsigned char> q = quantized(t, rows, K, 5);
    const Matrix m{t, q.data(), rows, K, row_bytes(t, K)};
    const int n = 12;
    const std::vector<float> x = randn(static_cast<size_t>(n) * K, 6);
    std::vector<float> whole(static_cast<size_t>(n) * rows);
    matmul(m, x.data(), n, whole.data(), pool);
    for (int c = 0; c < n; ++c) {
      std::vector<float> one(static_cast<size_t>(rows));
      matmul(m, x.data() + static_cast<size_t>(c) * K, 1, one.data(), pool);
      ASSERT_EQ(0, std::memcmp(one.data(), whole.data() + static_cast<size_t>(c) * rows, one.size() * sizeof(float)))
          << dtype_name(t) << " column " << c;
    }
  }
}

// Q8_0 (matmul.cpp: q8_0_vnni_decode): one column goes to the VNNI GEMV (the
// kernel matmul runs with the tiled path off), 2..8 columns to the tiled GEMV,
// prompts to the tiled GEMM; one column agrees with the tiled order to float
// rounding only.
TEST(GemvTiled, Q8_0OneColumnRunsTheVnniGemvMoreColumnsTheTiledOrder) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this machine";
  if (const char* e = std::getenv("TANDEM_Q8_0_GEMV"); e && std::string(e) == "0") GTEST_SKIP() << "switched off";
  testing::PathGuard guard;
  force_cpu_path(CpuPath::kAvx512);
  ThreadPool pool(2);
  const int64_t rows = 77, K = 320;
  const std::vector<unsigned char> q = quantized(DType::Q8_0, rows, K, 7);
  const Matrix m{DType::Q8_0, q.data(), rows, K, row_bytes(DType::Q8_0, K)};
  const int n = 12;
  const std::vector<float> x = randn(static_cast<size_t>(n) * K, 8);
  std::vector<float> whole(static_cast<size_t>(n) * rows);
  matmul(m, x.data(), n, whole.data(), pool);
  const std::vector<float> tiled2 = call(gemv_tiled_avx512(DType::Q8_0), m, x.data(), 2, pool);
  std::vector<float> two(static_cast<size_t>(2) * rows);
  matmul(m, x.data(), 2, two.data(), pool);
  ASSERT_EQ(0, std::memcmp(two.data(), tiled2.data(), two.size() * sizeof(float))) << "2 columns: tiled GEMV";
  ASSERT_EQ(0, std::memcmp(two.data(), whole.data(), two.size() * sizeof(float))) << "2 columns: prefill order";
  for (int c = 0; c < n; ++c) {
    const float* xc = x.data() + static_cast<size_t>(c) * K;
    std::vector<float> one(static_cast<size_t>(rows)), vnni(static_cast<size_t>(rows));
    matmul(m, xc, 1, one.data(), pool);
    set_gemm_tiled_enabled(false);
    matmul(m, xc, 1, vnni.data(), pool);
    set_gemm_tiled_enabled(true);
    ASSERT_EQ(0, std::memcmp(one.data(), vnni.data(), one.size() * sizeof(float))) << "column " << c;
    for (int64_t r = 0; r < rows; ++r) {
      const float w = whole[static_cast<size_t>(c) * rows + r];
      ASSERT_NEAR(one[r], w, 1e-5f * (1.0f + std::fabs(w))) << "column " << c << " row " << r;
    }
  }
}

}  // namespace
}  // namespace tandem::kernels
