// Decode GEMV kernels (1..8 columns, gemv_internal.h) against the scalar twin,
// over odd block counts and every column count, and their thread-count
// invariance (bit-identical results for 1, 2 and 3 threads).
#include <gtest/gtest.h>

#include <cstring>

#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "test_util.h"

namespace tandem::kernels {
namespace {
using testing::randn;

struct QWeights {
  std::vector<unsigned char> q;
  size_t rb = 0;
};

QWeights quantize(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  const std::vector<float> wf = randn(static_cast<size_t>(rows * cols), seed);
  QWeights w{std::vector<unsigned char>(row_bytes(t, cols) * rows), row_bytes(t, cols)};
  for (int64_t r = 0; r < rows; ++r) quantize_row(t, wf.data() + r * cols, w.q.data() + r * w.rb, cols);
  return w;
}

std::vector<float> run(CpuPath p, DType t, const QWeights& w, int64_t rows, int64_t cols, int n_cols,
                       ThreadPool& pool) {
  force_cpu_path(p);
  const std::vector<float> x = randn(static_cast<size_t>(n_cols * cols), 7 + n_cols);
  std::vector<float> y(static_cast<size_t>(n_cols * rows), -1.0f);
  matmul(Matrix{t, w.q.data(), rows, cols, w.rb}, x.data(), n_cols, y.data(), pool);
  return y;
}

// Q8_0: 1, 3 and 25 blocks per row (odd counts hit the single-block tail),
// 2 and 24 (even); Q4_K: 1, 3 and 5 super-blocks; rows around the 16-row
// split; 1..8 columns.
TEST(Gemv, QuantizedEveryPathMatchesScalarAllColumnCounts) {
  testing::PathGuard guard;
  ThreadPool pool(2);
  struct Case { DType t; std::vector<int64_t> cols; };
  const Case cases[] = {{DType::Q8_0, {32, 64, 96, 768, 800}}, {DType::Q4_K, {256, 768, 1280}}};
  for (const Case& k : cases)
    for (int64_t cols : k.cols)
      for (int64_t rows : {1, 17, 67}) {
        const QWeights w = quantize(k.t, rows, cols, static_cast<uint32_t>(rows * 31 + cols));
        for (int n_cols = 1; n_cols <= 8; ++n_cols) {
          const std::vector<float> ref = run(CpuPath::kScalar, k.t, w, rows, cols, n_cols, pool);
          for (CpuPath p : available_cpu_paths()) {
            if (p == CpuPath::kScalar) continue;
            const std::vector<float> y = run(p, k.t, w, rows, cols, n_cols, pool);
            for (size_t i = 0; i < y.size(); ++i)
              ASSERT_NEAR(y[i], ref[i], 2e-5 * std::sqrt(double(cols)) * (1 + std::fabs(ref[i])))
                  << dtype_name(k.t) << " " << cpu_path_name(p) << " rows " << rows << " cols " << cols
                  << " n_cols " << n_cols << " i " << i;
          }
        }
      }
}

// Hand-checked: one block with amax 127, so d_w = 1 and the quants are the
// integers themselves: q_w = 4(i-16) for i = 1..31 and q_w[0] = -127, sum -127.
// x = all ones quantizes to q_a = 127 with d_a = 1/127 (rounded to f16, rel.
// error < 5e-4), so y = d_a * 127 * sum q_w = -127 up to that rounding.
TEST(Gemv, Q8_0HandCheckedBlock) {
  testing::PathGuard guard;
  ThreadPool pool(1);
  std::vector<float> wf(32);
  for (int i = 0; i < 32; ++i) wf[i] = static_cast<float>(4 * (i - 16));
  wf[0] = -127.0f;
  QWeights w{std::vector<unsigned char>(row_bytes(DType::Q8_0, 32)), row_bytes(DType::Q8_0, 32)};
  quantize_row(DType::Q8_0, wf.data(), w.q.data(), 32);
  for (CpuPath p : available_cpu_paths()) {
    force_cpu_path(p);
    for (int n_cols = 1; n_cols <= 8; ++n_cols) {
      std::vector<float> xs(static_cast<size_t>(32 * n_cols), 1.0f), y(static_cast<size_t>(n_cols), 0.0f);
      matmul(Matrix{DType::Q8_0, w.q.data(), 1, 32, w.rb}, xs.data(), n_cols, y.data(), pool);
      for (int c = 0; c < n_cols; ++c) EXPECT_NEAR(y[c], -127.0f, 127.0f * 5e-4f) << cpu_path_name(p) << " col " << c;
    }
  }
}

TEST(Gemv, ResultsIdenticalForAnyThreadCount) {
  testing::PathGuard guard;
  const DType types[] = {DType::F32, DType::F16, DType::Q8_0, DType::Q4_K, DType::Q6_K};
  ThreadPool p1(1), p2(2), p3(3);
  for (DType t : types) {
    const int64_t rows = 83, cols = 512;
    const QWeights w = quantize(t, rows, cols, 5);
    for (CpuPath p : available_cpu_paths())
      for (int n_cols : {1, 4, 6, 8}) {
        const std::vector<float> a = run(p, t, w, rows, cols, n_cols, p1);
        const std::vector<float> b = run(p, t, w, rows, cols, n_cols, p2);
        const std::vector<float> c = run(p, t, w, rows, cols, n_cols, p3);
        ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)))
            << dtype_name(t) << " " << cpu_path_name(p) << " n_cols " << n_cols;
        ASSERT_EQ(0, std::memcmp(a.data(), c.data(), a.size() * sizeof(float)))
            << dtype_name(t) << " " << cpu_path_name(p) << " n_cols " << n_cols;
      }
  }
}

}  // namespace
}  // namespace tandem::kernels
