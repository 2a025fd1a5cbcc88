// State-space kernels against naive double-precision formulas (DESIGN.md
// §3.1/3.2), chunked vs sequential scans, conv with carried state vs conv over
// the concatenated sequence, and multi-sequence vs one-at-a-time.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "test_util.h"

namespace tandem::kernels {
namespace {
using testing::randn;
using testing::rel_rmse;
using testing::uniform;

double softplus_ref(double x) { return x > 20 ? x : std::log1p(std::exp(x)); }

struct Mamba2Case {
  int n_seqs, T, H, P, G, N;
  std::vector<float> x, dt, dt_bias, A, B, C, D;
  std::vector<std::vector<float>> state;
  Mamba2Case(int n_seqs_, int T_, int H_, int P_, int G_, int N_, uint32_t seed)
      : n_seqs(n_seqs_), T(T_), H(H_), P(P_), G(G_), N(N_) {
    const size_t rows = size_t(n_seqs) * T;
    x = randn(rows * H * P, seed);
    dt = randn(rows * H, seed + 1, 1.0f);
    for (float& v : dt) v -= 3.0f;  // softplus -> mostly 0.01 .. 0.3
    dt[0] = 25.0f;                  // exercise the softplus cut-off
    dt_bias = uniform(H, seed + 2, -0.5f, 0.5f);
    A = uniform(H, seed + 3, -2.0f, -0.1f);
    B = randn(rows * G * N, seed + 4);
    C = randn(rows * G * N, seed + 5);
    D = randn(H, seed + 6);
    for (int s = 0; s < n_seqs; ++s) state.push_back(randn(size_t(H) * P * N, seed + 10 + s, 0.5f));
  }
  Mamba2ScanArgs args(std::vector<float*>& sp, std::vector<float>& y) {
    sp.clear();
    for (auto& s : state) sp.push_back(s.data());
    y.assign(size_t(n_seqs) * T * H * P, 0.0f);
    Mamba2ScanArgs a;
    a.n_seqs = n_seqs; a.n_seq_tokens = T; a.n_head = H; a.head_dim = P; a.n_group = G; a.d_state = N;
    a.x = x.data(); a.x_stride = size_t(H) * P;
    a.dt = dt.data(); a.dt_stride = H;
    a.dt_bias = dt_bias.data(); a.A = A.data();
    a.B = B.data(); a.B_stride = size_t(G) * N;
    a.C = C.data(); a.C_stride = size_t(G) * N;
    a.D = D.data(); a.state = sp.data();
    a.y = y.data(); a.y_stride = size_t(H) * P;
    return a;
  }
  // Naive recurrence in double; updates `st` (copies of the states).
  std::vector<double> reference(std::vector<std::vector<double>>& st) const {
    std::vector<double> y(size_t(n_seqs) * T * H * P);
    for (int s = 0; s < n_seqs; ++s)
      for (int t = 0; t < T; ++t) {
        const size_t row = size_t(s) * T + t;
        for (int h = 0; h < H; ++h) {
          const int g = h / (H / G);
          const double d = softplus_ref(double(dt[row * H + h]) + dt_bias[h]);
          const double dA = std::exp(d * A[h]);
          for (int p = 0; p < P; ++p) {
            const double xv = x[row * H * P + h * P + p];
            double acc = 0;
            for (int n = 0; n < N; ++n) {
              double& S = st[s][(size_t(h) * P + p) * N + n];
              S = S * dA + d * xv * B[row * G * N + g * N + n];
              acc += S * C[row * G * N + g * N + n];
            }
            y[row * H * P + h * P + p] = acc + D[h] * xv;
          }
        }
      }
    return y;
  }
};

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

TEST(Mamba2Scan, SequentialMatchesNaiveFormulaOnEveryPath) {
  testing::PathGuard guard;
  ThreadPool pool(2);
  for (CpuPath path : available_cpu_paths()) {
  force_cpu_path(path);
  Mamba2Case c(2, 37, 4, 3, 2, 37, 100);
  std::vector<std::vector<double>> st;
  for (auto& s : c.state) st.emplace_back(s.begin(), s.end());
  std::vector<double> ref = c.reference(st);
  std::vector<float*> sp;
  std::vector<float> y;
  ssm_scan_mamba2_sequential(c.args(sp, y), pool);
  EXPECT_LT(rel_rmse(y.data(), to_float(ref).data(), y.size()), 1e-5);
  for (int s = 0; s < c.n_seqs; ++s)
    EXPECT_LT(rel_rmse(c.state[s].data(), to_float(st[s]).data(), st[s].size()), 1e-5) << cpu_path_name(path);
  }
}

TEST(Mamba2Scan, ChunkedMatchesSequentialOnEveryPath) {
  testing::PathGuard guard;
  ThreadPool pool(2);
  for (CpuPath path : available_cpu_paths())
  for (int chunk : {1, 7, 16, 64, 256}) {
    force_cpu_path(path);
    for (int T : {1, 3, 31, 100, 257}) {
      Mamba2Case a(2, T, 4, 8, 2, 16, 200 + T), b(2, T, 4, 8, 2, 16, 200 + T);
      std::vector<float*> spa, spb;
      std::vector<float> ya, yb;
      ssm_scan_mamba2_sequential(a.args(spa, ya), pool);
      ssm_scan_mamba2_chunked(b.args(spb, yb), chunk, pool);
      EXPECT_LT(rel_rmse(yb.data(), ya.data(), ya.size()), 1e-5) << "chunk " << chunk << " T " << T << cpu_path_name(path);
      for (int s = 0; s < 2; ++s)
        EXPECT_LT(rel_rmse(b.state[s].data(), a.state[s].data(), a.state[s].size()), 1e-5)
            << "chunk " << chunk << " T " << T;
    }
  }
}

TEST(Mamba2Scan, MultiSequenceEqualsOneAtATime) {
  ThreadPool pool(3);
  Mamba2Case both(3, 20, 4, 4, 1, 8, 300);
  std::vector<float*> sp;
  std::vector<float> y;
  ssm_scan_mamba2(both.args(sp, y), pool);
  for (int s = 0; s < 3; ++s) {
    Mamba2Case one(3, 20, 4, 4, 1, 8, 300);  // same data; run only stream s
    std::vector<float*> sp1;
    std::vector<float> y1;
    Mamba2ScanArgs a = one.args(sp1, y1);
    const size_t row0 = size_t(s) * 20;
    a.n_seqs = 1;
    a.x += row0 * a.x_stride; a.dt += row0 * a.dt_stride;
    a.B += row0 * a.B_stride; a.C += row0 * a.C_stride;
    a.y += row0 * a.y_stride; a.state = sp1.data() + s;
    ssm_scan_mamba2(a, pool);
    for (size_t i = 0; i < 20 * a.y_stride; ++i) ASSERT_EQ(y[row0 * a.y_stride + i], y1[row0 * a.y_stride + i]);
    EXPECT_EQ(both.state[s], one.state[s]);
  }
}

TEST(Mamba1Scan, MatchesNaiveFormula) {
  ThreadPool pool(2);
  const int n_seqs = 2, T = 9, Di = 37, N = 16;
  const size_t rows = size_t(n_seqs) * T;
  std::vector<float> x = randn(rows * Di, 1), dt = randn(rows * Di, 2), bias = randn(Di, 3, 0.3f);
  for (float& v : dt) v -= 2.0f;
  std::vector<float> A = uniform(size_t(Di) * N, 4, -3.0f, -0.2f), B = randn(rows * N, 5), C = randn(rows * N, 6),
                     D = randn(Di, 7);
  std::vector<std::vector<float>> st{randn(size_t(Di) * N, 8), randn(size_t(Di) * N, 9)};
  std::vector<std::vector<double>> ref_st(st.size());
  for (size_t i = 0; i < st.size(); ++i) ref_st[i].assign(st[i].begin(), st[i].end());
  std::vector<double> ref(rows * Di);
  for (int s = 0; s < n_seqs; ++s)
    for (int t = 0; t < T; ++t) {
      const size_t row = size_t(s) * T + t;
      for (int c = 0; c < Di; ++c) {
        const double d = softplus_ref(double(dt[row * Di + c]) + bias[c]);
        double acc = 0;
        for (int n = 0; n < N; ++n) {
          double& S = ref_st[s][size_t(c) * N + n];
          S = S * std::exp(d * A[size_t(c) * N + n]) + d * x[row * Di + c] * B[row * N + n];
          acc += S * C[row * N + n];
        }
        ref[row * Di + c] = acc + D[c] * x[row * Di + c];
      }
    }
  std::vector<float*> sp{st[0].data(), st[1].data()};
  std::vector<float> y(rows * Di);
  Mamba1ScanArgs a;
  a.n_seqs = n_seqs; a.n_seq_tokens = T; a.d_inner = Di; a.d_state = N;
  a.x = x.data(); a.x_stride = Di; a.dt = dt.data(); a.dt_stride = Di; a.dt_bias = bias.data();
  a.A = A.data(); a.B = B.data(); a.B_stride = N; a.C = C.data(); a.C_stride = N; a.D = D.data();
  a.state = sp.data(); a.y = y.data(); a.y_stride = Di;
  ssm_scan_mamba1(a, pool);
  EXPECT_LT(rel_rmse(y.data(), to_float(ref).data(), y.size()), 1e-5);
  for (int s = 0; s < n_seqs; ++s) EXPECT_LT(rel_rmse(st[s].data(), to_float(ref_st[s]).data(), st[s].size()), 1e-5);
}

// Conv: naive causal conv over [state; x] in double, and split-with-state == whole.
TEST(SsmConv, MatchesNaiveAndCarriesState) {
  ThreadPool pool(2);
  for (int width : {2, 4}) {
    const int C = 67, T = 10;
    std::vector<float> x = randn(size_t(T) * C, 21), w = randn(size_t(C) * width, 22), bias = randn(C, 23);
    // naive over zero initial state
    std::vector<float> ref(size_t(T) * C);
    for (int t = 0; t < T; ++t)
      for (int c = 0; c < C; ++c) {
        double s = 0;
        for (int k = 0; k < width; ++k) {
          const int src = t - (width - 1) + k;
          if (src >= 0) s += double(x[size_t(src) * C + c]) * w[size_t(c) * width + k];
        }
        s += bias[c];
        ref[size_t(t) * C + c] = static_cast<float>(s / (1 + std::exp(-s)));
      }
    std::vector<float> whole(size_t(T) * C), state(size_t(width - 1) * C, 0.0f);
    float* sp = state.data();
    ConvArgs a;
    a.x = x.data(); a.x_stride = C; a.n_seqs = 1; a.n_seq_tokens = T; a.channels = C; a.width = width;
    a.state = &sp; a.w = w.data(); a.bias = bias.data(); a.out = whole.data();
    ssm_conv(a, pool);
    EXPECT_LT(rel_rmse(whole.data(), ref.data(), ref.size()), 1e-6);
    const std::vector<float> final_state = state;
    // the state keeps the last width-1 inputs
    for (int k = 0; k < width - 1; ++k)
      for (int c = 0; c < C; ++c) ASSERT_EQ(final_state[size_t(k) * C + c], x[size_t(T - width + 1 + k) * C + c]);

    // 3 tokens, then 1, then 6, carrying the state
    std::fill(state.begin(), state.end(), 0.0f);
    std::vector<float> split(size_t(T) * C);
    int t0 = 0;
    for (int len : {3, 1, 6}) {
      a.x = x.data() + size_t(t0) * C;
      a.n_seq_tokens = len;
      a.out = split.data() + size_t(t0) * C;
      ssm_conv(a, pool);
      t0 += len;
    }
    EXPECT_EQ(split, whole);
    EXPECT_EQ(state, final_state);
  }
}

TEST(SsmConv, MultiSequenceWithStrideAndNoBias) {
  ThreadPool pool(3);
  const int C = 5, T = 4, W = 4, stride = 9;
  std::vector<float> x = randn(size_t(2) * T * stride, 31), w = randn(size_t(C) * W, 32);
  std::vector<float> s0 = randn(size_t(W - 1) * C, 33), s1 = randn(size_t(W - 1) * C, 34);
  std::vector<float> r0 = s0, r1 = s1;
  float* sp[2] = {s0.data(), s1.data()};
  std::vector<float> out(size_t(2) * T * C);
  ConvArgs a;
  a.x = x.data(); a.x_stride = stride; a.n_seqs = 2; a.n_seq_tokens = T; a.channels = C; a.width = W;
  a.state = sp; a.w = w.data(); a.bias = nullptr; a.silu = false; a.out = out.data();
  ssm_conv(a, pool);
  for (int s = 0; s < 2; ++s) {
    const std::vector<float>& st = s == 0 ? r0 : r1;
    for (int t = 0; t < T; ++t)
      for (int c = 0; c < C; ++c) {
        double acc = 0;
        for (int k = 0; k < W; ++k) {
          const int src = t - (W - 1) + k;  // < 0: from the state
          const double v = src >= 0 ? x[(size_t(s) * T + src) * stride + c] : st[size_t(W - 1 + src) * C + c];
          acc += v * w[size_t(c) * W + k];
        }
        EXPECT_NEAR(out[(size_t(s) * T + t) * C + c], acc, 1e-5);
      }
  }
}

}  // namespace
}  // namespace tandem::kernels
