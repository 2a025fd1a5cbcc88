// Every SIMD path against its scalar twin, over odd and edge sizes.
#include <gtest/gtest.h>

#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "test_util.h"

namespace tandem::kernels {
namespace {
using testing::randn;

struct Weights {
  std::vector<unsigned char> q;
  size_t rb;
};

Weights make_weights(DType t, int64_t rows, int64_t cols) {
  std::vector<float> wf = randn(static_cast<size_t>(rows * cols), static_cast<uint32_t>(rows * 7 + cols));
  Weights w{std::vector<unsigned char>(row_bytes(t, cols) * rows), row_bytes(t, cols)};
  for (int64_t r = 0; r < rows; ++r) quantize_row(t, wf.data() + r * cols, w.q.data() + r * w.rb, cols);
  return w;
}

std::vector<float> run_matmul(CpuPath p, DType t, const Weights& w, int64_t rows, int64_t cols, int n_cols,
                              ThreadPool& pool) {
  force_cpu_path(p);
  std::vector<float> x = randn(static_cast<size_t>(n_cols * cols), 99);
  std::vector<float> y(static_cast<size_t>(n_cols * rows), -1.0f);
  matmul(Matrix{t, w.q.data(), rows, cols, w.rb}, x.data(), n_cols, y.data(), pool);
  return y;
}

TEST(SimdTwins, MatmulEveryTypeEveryPathMatchesScalar) {
  testing::PathGuard guard;
  ThreadPool pool(2);
  const DType types[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                         DType::Q5_1, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};
  for (DType t : types) {
    const bool plain = !dtype_info(t).quantized;
    const std::vector<int64_t> col_sizes =
        plain ? std::vector<int64_t>{1, 3, 31, 257} : std::vector<int64_t>{256, 512};
    for (int64_t cols : col_sizes)
      for (int64_t rows : {1, 3, 31, 67}) {
        const Weights w = make_weights(t, rows, cols);
        for (int n_cols : {1, 3, 8}) {
          const std::vector<float> ref = run_matmul(CpuPath::kScalar, t, w, rows, cols, n_cols, pool);
          for (CpuPath p : available_cpu_paths()) {
            if (p == CpuPath::kScalar) continue;
            const std::vector<float> y = run_matmul(p, t, w, rows, cols, n_cols, pool);
            // same integer sums / products; only the float summation order differs
            for (size_t i = 0; i < y.size(); ++i)
              ASSERT_NEAR(y[i], ref[i], 2e-5 * std::sqrt(double(cols)) * (1 + std::fabs(ref[i])))
                  << dtype_name(t) << " " << cpu_path_name(p) << " rows " << rows << " cols " << cols << " n_cols "
                  << n_cols << " i " << i;
          }
        }
      }
  }
}

TEST(SimdTwins, Prefill512ColumnsMatchesScalar) {
  testing::PathGuard guard;
  ThreadPool pool(2);
  for (DType t : {DType::F32, DType::Q8_0, DType::Q4_K}) {
    const Weights w = make_weights(t, 19, 256);
    const std::vector<float> ref = run_matmul(CpuPath::kScalar, t, w, 19, 256, 37, pool);
    for (CpuPath p : available_cpu_paths()) {
      const std::vector<float> y = run_matmul(p, t, w, 19, 256, 37, pool);
      EXPECT_LT(testing::rel_rmse(y.data(), ref.data(), y.size()), 1e-6) << dtype_name(t) << " " << cpu_path_name(p);
    }
  }
}

}  // namespace
}  // namespace tandem::kernels

namespace tandem::kernels {
namespace {

// Mamba2 scans (sequential and chunked): each SIMD path vs the scalar twin.
std::vector<float> run_scan(CpuPath p, int chunk, ThreadPool& pool) {
  force_cpu_path(p);
  const int S = 2, T = 45, H = 3, P = 5, G = 1, N = 33;
  const size_t rows = size_t(S) * T;
  std::vector<float> x = randn(rows * H * P, 1), dt = randn(rows * H, 2), B = randn(rows * N, 3), C = randn(rows * N, 4);
  for (float& v : dt) v -= 2.0f;
  std::vector<float> A = {-0.3f, -1.0f, -2.5f}, D = {0.5f, -1.0f, 2.0f}, y(rows * H * P);
  std::vector<float> s0 = randn(size_t(H) * P * N, 5), s1 = randn(size_t(H) * P * N, 6);
  float* sp[2] = {s0.data(), s1.data()};
  Mamba2ScanArgs a;
  a.n_seqs = S; a.n_seq_tokens = T; a.n_head = H; a.head_dim = P; a.n_group = G; a.d_state = N;
  a.x = x.data(); a.x_stride = size_t(H) * P; a.dt = dt.data(); a.dt_stride = H; a.A = A.data();
  a.B = B.data(); a.B_stride = N; a.C = C.data(); a.C_stride = N; a.D = D.data(); a.state = sp;
  a.y = y.data(); a.y_stride = size_t(H) * P;
  if (chunk == 0) ssm_scan_mamba2_sequential(a, pool);
  else ssm_scan_mamba2_chunked(a, chunk, pool);
  y.insert(y.end(), s0.begin(), s0.end());
  y.insert(y.end(), s1.begin(), s1.end());
  return y;
}

TEST(SimdTwins, Mamba2ScansMatchScalar) {
  testing::PathGuard guard;
  ThreadPool pool(2);
  for (int chunk : {0, 16, 64}) {
    const std::vector<float> ref = run_scan(CpuPath::kScalar, chunk, pool);
    for (CpuPath p : available_cpu_paths()) {
      const std::vector<float> y = run_scan(p, chunk, pool);
      EXPECT_LT(testing::rel_rmse(y.data(), ref.data(), y.size()), 1e-6) << cpu_path_name(p) << " chunk " << chunk;
    }
  }
}

}  // namespace
}  // namespace tandem::kernels
