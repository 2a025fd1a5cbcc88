// BF16 matmul in the reference engine's accumulation order (kernels/gemm_bf16.h):
//  * hand-computed sums where the layouts give different f32 results,
//  * the scalar twin equals the vdpbf16ps instruction itself on random inputs
//    (the hardware is the independent truth; that one test is skipped, with a
//    message, on a CPU without AVX-512 BF16 — it cannot run there),
//  * matmul() on every CPU path equals the scalar twin bit for bit, for odd
//    shapes, 1..9 columns and 1/2 threads.
#include <immintrin.h>

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "core/fp16.h"
#include "kernels/cpu.h"
#include "kernels/gemm_bf16.h"
#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "test_util.h"

namespace tandem::kernels {
namespace {

uint16_t bf(float f) { return f32_to_bf16(f); }

struct PathGuard {
  CpuPath saved = active_cpu_path();
  ~PathGuard() { force_cpu_path(saved); }
};

// K = 32, all weights 1: element 1 = 2^24, elements 0, 2, 3 = 1, the rest 0.
// Reference GEMM layout: lane 0 = (0 + 2^24) + 1 = 2^24 (tie to even),
// lane 1 = (0 + 1) + 1 = 2; tree sum 2^24 + 2 = 16777218 (exact).
// Vec-dot layout (K < 64: all of it is the double tail): 2^24 + 3, rounded
// to f32 = 16777220 (tie to even). A plain sequential f32 sum gives 2^24.
TEST(Bf16Order, HandComputedLayouts) {
  std::vector<uint16_t> w(32, bf(1.0f)), x(32, bf(0.0f));
  x[1] = bf(16777216.0f);
  x[0] = x[2] = x[3] = bf(1.0f);
  EXPECT_EQ(dot_bf16_sgemm_scalar(w.data(), x.data(), 32), 16777218.0f);
  EXPECT_EQ(dot_bf16_vecdot_scalar(w.data(), x.data(), 32), 16777220.0f);

  // The same through matmul(): 4 rows (a multiple of the reference's row
  // tile) and 2 columns take the GEMM layout, 1 column the vec-dot layout.
  PathGuard guard;
  ThreadPool pool(1);
  std::vector<uint16_t> W(4 * 32, bf(1.0f));
  std::vector<float> X(2 * 32, 0.0f);
  for (int c = 0; c < 2; ++c) {
    X[c * 32 + 1] = 16777216.0f;
    X[c * 32 + 0] = X[c * 32 + 2] = X[c * 32 + 3] = 1.0f;
  }
  const Matrix m{DType::BF16, W.data(), 4, 32, 32 * sizeof(uint16_t)};
  for (CpuPath p : available_cpu_paths()) {
    force_cpu_path(p);
    std::vector<float> y(8, -1.0f);
    matmul(m, X.data(), 2, y.data(), pool);
    for (float v : y) EXPECT_EQ(v, 16777218.0f) << cpu_path_name(p);
    matmul(m, X.data(), 1, y.data(), pool);
    for (int r = 0; r < 4; ++r) EXPECT_EQ(y[r], 16777220.0f) << cpu_path_name(p);
  }
  EXPECT_EQ(bf16_layout(4, 32, 2), Bf16Layout::kSgemm);
  EXPECT_EQ(bf16_layout(4, 32, 1), Bf16Layout::kVecDot);
  EXPECT_EQ(bf16_layout(6, 32, 2), Bf16Layout::kVecDot);   // rows % 4 != 0
  EXPECT_EQ(bf16_layout(4, 48, 2), Bf16Layout::kVecDot);   // K % 32 != 0
}

__attribute__((target("avx512f,avx512bf16"))) void hw_dp(const uint16_t* w, const uint16_t* x, float* acc) {
  __m512i wv = _mm512_loadu_si512(w), xv = _mm512_loadu_si512(x);
  __m512 a = _mm512_loadu_ps(acc);
  a = _mm512_dpbf16_ps(a, reinterpret_cast<__m512bh&>(wv), reinterpret_cast<__m512bh&>(xv));
  _mm512_storeu_ps(acc, a);
}

// dot_bf16_sgemm_scalar over K = 32·s equals s chained vdpbf16ps followed by
// the lane tree sum; here the lane values after the instruction are compared
// through a 32-element dot whose other lanes are zero, one lane at a time.
TEST(Bf16Order, ScalarTwinMatchesInstruction) {
  if (!cpu_features().avx512bf16) GTEST_SKIP() << "this CPU lacks AVX-512 BF16: the instruction cannot be run here";
  const auto a = testing::randn(64 * 200, 11), b = testing::randn(64 * 200, 12, 30.0f);
  int mismatches = 0;
  for (int it = 0; it < 200; ++it) {
    uint16_t w[64], x[64];
    for (int i = 0; i < 64; ++i) { w[i] = bf(a[it * 64 + i]); x[i] = bf(b[it * 64 + i]); }
    float acc[16] = {};
    hw_dp(w, x, acc);
    hw_dp(w + 32, x + 32, acc);
    for (int lane = 0; lane < 16; ++lane) {
      // Lane `lane` alone: zero every other pair, then the tree sum is the lane value.
      uint16_t wl[64] = {}, xl[64] = {};
      for (int c = 0; c < 2; ++c)
        for (int e = 0; e < 2; ++e) {
          wl[32 * c + 2 * lane + e] = w[32 * c + 2 * lane + e];
          xl[32 * c + 2 * lane + e] = x[32 * c + 2 * lane + e];
        }
      const float s = dot_bf16_sgemm_scalar(wl, xl, 64);
      uint32_t u1, u2;
      std::memcpy(&u1, &s, 4);
      std::memcpy(&u2, &acc[lane], 4);
      mismatches += (u1 != u2) && !(s == 0.0f && acc[lane] == 0.0f);
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(Bf16Order, MatmulEqualsScalarTwinOnEveryPath) {
  PathGuard guard;
  for (int64_t rows : {1, 3, 4, 8, 33}) {
    for (int64_t K : {32, 64, 96, 130, 256}) {
      for (int n_cols : {1, 2, 3, 5, 9}) {
        const auto wf = testing::randn(static_cast<size_t>(rows * K), 100 + static_cast<uint32_t>(rows * K));
        const auto xf = testing::randn(static_cast<size_t>(n_cols * K), 7 + static_cast<uint32_t>(n_cols));
        std::vector<uint16_t> W(wf.size()), Xb(xf.size());
        for (size_t i = 0; i < wf.size(); ++i) W[i] = bf(wf[i]);
        for (size_t i = 0; i < xf.size(); ++i) Xb[i] = bf(xf[i]);  // what matmul rounds x to
        const Matrix m{DType::BF16, W.data(), rows, K, static_cast<size_t>(K) * 2};
        const Bf16Layout lay = bf16_layout(rows, K, n_cols);
        std::vector<float> want(static_cast<size_t>(rows * n_cols));
        for (int c = 0; c < n_cols; ++c)
          for (int64_t r = 0; r < rows; ++r)
            want[c * rows + r] = lay == Bf16Layout::kSgemm ? dot_bf16_sgemm_scalar(&W[r * K], &Xb[c * K], K)
                                                           : dot_bf16_vecdot_scalar(&W[r * K], &Xb[c * K], K);
        for (CpuPath p : available_cpu_paths()) {
          force_cpu_path(p);
          for (int threads : {1, 2}) {
            ThreadPool pool(threads);
            std::vector<float> y(want.size(), -7.0f);
            matmul(m, xf.data(), n_cols, y.data(), pool);
            ASSERT_EQ(0, std::memcmp(y.data(), want.data(), y.size() * 4))
                << cpu_path_name(p) << " rows " << rows << " K " << K << " cols " << n_cols << " threads " << threads;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace tandem::kernels
