// Out-of-place state updates (state_in != state, the hybrid memory's double
// buffering): every scan form on every CPU path must give bit for bit the
// outputs and new states of the in-place call, write every destination value
// (the destination starts as NaN) and leave the source untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/kernels.h"
#include "kernels/ssm_internal.h"
#include "kernels/thread_pool.h"
#include "test_util.h"

namespace tandem::kernels {
namespace {
using testing::randn;
using testing::uniform;

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class LegacyGuard {
 public:
  LegacyGuard() : saved_(ssm_legacy()) {}
  ~LegacyGuard() { set_ssm_legacy(saved_); }
 private:
  bool saved_;
};

struct Inputs {
  int S, T, H, P, G, N;
  std::vector<float> x, dt, bias, A, B, C, D;
  std::vector<std::vector<float>> state;
  Inputs(int S_, int T_, int H_, int P_, int G_, int N_, uint32_t seed) : S(S_), T(T_), H(H_), P(P_), G(G_), N(N_) {
    const size_t rows = size_t(S) * T;
    x = randn(rows * H * P, seed);
    dt = randn(rows * H, seed + 1);
    for (float& v : dt) v -= 2.0f;
    bias = uniform(H, seed + 2, -0.5f, 0.5f);
    A = uniform(H, seed + 3, -2.0f, -0.1f);
    B = randn(rows * G * N, seed + 4);
    C = randn(rows * G * N, seed + 5);
    D = randn(H, seed + 6);
    for (int s = 0; s < S; ++s) state.push_back(randn(size_t(H) * P * N, seed + 10 + s, 0.5f));
  }
  Mamba2ScanArgs args(float* const* dst, const float* const* src, float* y) const {
    Mamba2ScanArgs a;
    a.n_seqs = S; a.n_seq_tokens = T; a.n_head = H; a.head_dim = P; a.n_group = G; a.d_state = N;
    a.x = x.data(); a.x_stride = size_t(H) * P;
    a.dt = dt.data(); a.dt_stride = H;
    a.dt_bias = bias.data(); a.A = A.data();
    a.B = B.data(); a.B_stride = size_t(G) * N;
    a.C = C.data(); a.C_stride = size_t(G) * N;
    a.D = D.data(); a.state = dst; a.state_in = src;
    a.y = y; a.y_stride = size_t(H) * P;
    return a;
  }
};

enum class Form { kSequential, kChunked };

// In place on a copy of the states, then out of place from the originals into
// NaN-filled destinations; compare everything bit for bit.
void check_mamba2(const Inputs& in, Form form, const char* what) {
  ThreadPool pool(2);
  const size_t rows = size_t(in.S) * in.T, ny = rows * in.H * in.P;
  auto run = [&](const Mamba2ScanArgs& a) {
    if (form == Form::kSequential) ssm_scan_mamba2_sequential(a, pool);
    else ssm_scan_mamba2_chunked(a, 8, pool);
  };
  std::vector<std::vector<float>> inplace = in.state;
  std::vector<float*> ip;
  for (auto& s : inplace) ip.push_back(s.data());
  std::vector<float> y_in(ny);
  run(in.args(ip.data(), nullptr, y_in.data()));

  const std::vector<std::vector<float>> src = in.state;
  std::vector<std::vector<float>> dst(in.S, std::vector<float>(in.state[0].size(),
                                                                std::numeric_limits<float>::quiet_NaN()));
  std::vector<const float*> sp;
  std::vector<float*> dp;
  for (int s = 0; s < in.S; ++s) {
    sp.push_back(src[s].data());
    dp.push_back(dst[s].data());
  }
  std::vector<float> y_out(ny);
  run(in.args(dp.data(), sp.data(), y_out.data()));

  EXPECT_TRUE(same_bits(y_in, y_out)) << what;
  for (int s = 0; s < in.S; ++s) {
    EXPECT_TRUE(same_bits(inplace[s], dst[s])) << what << " stream " << s;
    EXPECT_TRUE(same_bits(src[s], in.state[s])) << what << " stream " << s << ": the source changed";
  }
}

TEST(SsmOutOfPlace, Mamba2ScansEqualInPlaceOnEveryPath) {
  testing::PathGuard guard;
  LegacyGuard legacy;
  for (CpuPath path : available_cpu_paths()) {
    force_cpu_path(path);
    for (bool old_kernels : {false, true}) {
      set_ssm_legacy(old_kernels);
      // d_state 128 / 64 take the fixed-width AVX-512 kernels, 37 the generic one
      // with a scalar tail; T = 1 is a decode step, 37 a prefill.
      for (int N : {128, 64, 37})
        for (int T : {1, 2, 37}) {
          const Inputs in(3, T, 4, 16, 2, N, 500 + N + T);
          const std::string what = std::string(cpu_path_name(path)) + (old_kernels ? " legacy" : "") +
                                   " N=" + std::to_string(N) + " T=" + std::to_string(T);
          check_mamba2(in, Form::kSequential, what.c_str());
          if (!old_kernels) check_mamba2(in, Form::kChunked, (what + " chunked").c_str());
        }
    }
  }
}

TEST(SsmOutOfPlace, Mamba1ScanEqualsInPlace) {
  ThreadPool pool(2);
  const int S = 2, T = 5, Di = 37, N = 16;
  const size_t rows = size_t(S) * T;
  const std::vector<float> x = randn(rows * Di, 61), B = randn(rows * N, 62), C = randn(rows * N, 63),
                           bias = randn(Di, 64), D = randn(Di, 65);
  std::vector<float> dt = randn(rows * Di, 66), A = uniform(size_t(Di) * N, 67, -2.0f, -0.1f);
  std::vector<std::vector<float>> state{randn(size_t(Di) * N, 68), randn(size_t(Di) * N, 69)};
  auto args = [&](float* const* dst, const float* const* src, float* y) {
    Mamba1ScanArgs a;
    a.n_seqs = S; a.n_seq_tokens = T; a.d_inner = Di; a.d_state = N;
    a.x = x.data(); a.x_stride = Di; a.dt = dt.data(); a.dt_stride = Di; a.dt_bias = bias.data();
    a.A = A.data(); a.B = B.data(); a.B_stride = N; a.C = C.data(); a.C_stride = N; a.D = D.data();
    a.state = dst; a.state_in = src; a.y = y; a.y_stride = Di;
    return a;
  };
  std::vector<std::vector<float>> inplace = state;
  std::vector<float*> ip{inplace[0].data(), inplace[1].data()};
  std::vector<float> y_in(rows * Di), y_out(rows * Di);
  ssm_scan_mamba1(args(ip.data(), nullptr, y_in.data()), pool);
  const std::vector<std::vector<float>> src = state;
  std::vector<std::vector<float>> dst(S, std::vector<float>(state[0].size(), std::numeric_limits<float>::quiet_NaN()));
  std::vector<const float*> sp{src[0].data(), src[1].data()};
  std::vector<float*> dp{dst[0].data(), dst[1].data()};
  ssm_scan_mamba1(args(dp.data(), sp.data(), y_out.data()), pool);
  EXPECT_TRUE(same_bits(y_in, y_out));
  for (int s = 0; s < S; ++s) {
    EXPECT_TRUE(same_bits(inplace[s], dst[s])) << s;
    EXPECT_TRUE(same_bits(src[s], state[s])) << s;
  }
}

}  // namespace
}  // namespace tandem::kernels
