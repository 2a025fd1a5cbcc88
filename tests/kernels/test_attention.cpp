// Attention vs a naive implementation that materialises the scores and runs
// a plain softmax, in double; GQA, F16/F32 caches, masks, empty rows.
#include <gtest/gtest.h>

#include <cmath>

#include "core/fp16.h"
#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "test_util.h"

namespace tandem::kernels {
namespace {
using testing::randn;

struct Case {
  int T, H, KVH, dk, dv, n_kv;
  DType kv;
};

void run_case(const Case& c, ThreadPool& pool, uint32_t seed) {
  std::vector<float> q = randn(size_t(c.T) * c.H * c.dk, seed);
  std::vector<float> kf = randn(size_t(c.n_kv) * c.KVH * c.dk, seed + 1), vf = randn(size_t(c.n_kv) * c.KVH * c.dv, seed + 2);
  const size_t esz = c.kv == DType::F16 ? 2 : 4;
  std::vector<unsigned char> kb(kf.size() * esz), vb(vf.size() * esz);
  // the values the kernel actually sees (F16 rounds)
  std::vector<float> ks(kf.size()), vs(vf.size());
  for (size_t i = 0; i < kf.size(); ++i) {
    if (esz == 2) { uint16_t h = f32_to_fp16(kf[i]); std::memcpy(&kb[i * 2], &h, 2); ks[i] = fp16_to_f32(h); }
    else { std::memcpy(&kb[i * 4], &kf[i], 4); ks[i] = kf[i]; }
  }
  for (size_t i = 0; i < vf.size(); ++i) {
    if (esz == 2) { uint16_t h = f32_to_fp16(vf[i]); std::memcpy(&vb[i * 2], &h, 2); vs[i] = fp16_to_f32(h); }
    else { std::memcpy(&vb[i * 4], &vf[i], 4); vs[i] = vf[i]; }
  }
  // causal-ish mask with some extra hidden cells, an additive bias, and the
  // last token sees nothing
  std::vector<float> mask(size_t(c.T) * c.n_kv, 0.0f);
  for (int t = 0; t < c.T; ++t)
    for (int j = 0; j < c.n_kv; ++j) {
      float& m = mask[size_t(t) * c.n_kv + j];
      if (j > c.n_kv - c.T + t || (j % 5 == 3)) m = -INFINITY;
      else if (j % 7 == 1) m = -0.75f;
      if (t == c.T - 1 && c.T > 1) m = -INFINITY;
    }
  std::vector<float> out(size_t(c.T) * c.H * c.dv, 123.0f);
  AttentionArgs a;
  a.q = q.data(); a.n_tokens = c.T; a.n_head = c.H; a.n_kv_head = c.KVH; a.head_dim_k = c.dk; a.head_dim_v = c.dv;
  a.kv_type = c.kv; a.k = kb.data(); a.v = vb.data();
  a.k_row_bytes = size_t(c.KVH) * c.dk * esz; a.v_row_bytes = size_t(c.KVH) * c.dv * esz;
  a.n_kv = c.n_kv; a.mask = mask.data(); a.scale = 1.0f / std::sqrt(float(c.dk)); a.out = out.data();
  attention(a, pool);

  const int group = c.H / c.KVH;
  for (int t = 0; t < c.T; ++t)
    for (int h = 0; h < c.H; ++h) {
      const int kvh = h / group;
      std::vector<double> sc(c.n_kv);
      double mx = -INFINITY;
      for (int j = 0; j < c.n_kv; ++j) {
        double s = 0;
        for (int i = 0; i < c.dk; ++i) {
          float qi = q[(size_t(t) * c.H + h) * c.dk + i];
          if (c.kv == DType::F16) qi = fp16_to_f32(f32_to_fp16(qi));  // the documented Q rounding
          s += double(qi) * ks[(size_t(j) * c.KVH + kvh) * c.dk + i];
        }
        sc[j] = s * a.scale + mask[size_t(t) * c.n_kv + j];
        mx = std::max(mx, sc[j]);
      }
      const float* o = out.data() + (size_t(t) * c.H + h) * c.dv;
      if (mx == -INFINITY) {
        for (int i = 0; i < c.dv; ++i) ASSERT_EQ(o[i], 0.0f) << "row with nothing visible";
        continue;
      }
      double z = 0;
      for (double& s : sc) { s = std::exp(s - mx); z += s; }
      for (int i = 0; i < c.dv; ++i) {
        double r = 0;
        for (int j = 0; j < c.n_kv; ++j) r += sc[j] / z * vs[(size_t(j) * c.KVH + kvh) * c.dv + i];
        // F16 cache: V is accumulated in F16 (reference-engine behaviour), each
        // update rounding to 2^-11 relative; the errors of n_kv updates add up
        // like a random walk on values of |v| <= ~4.
        const double tol = c.kv == DType::F16 ? 4.0 * std::ldexp(1.0, -11) * std::sqrt(double(c.n_kv)) : 2e-5;
        ASSERT_NEAR(o[i], r, tol) << "t " << t << " h " << h << " i " << i << " path "
                                   << cpu_path_name(active_cpu_path());
      }
    }
}

TEST(Attention, MatchesNaiveSoftmaxOnEveryPath) {
  testing::PathGuard guard;
  ThreadPool pool(2);
  const Case cases[] = {
      {1, 1, 1, 1, 1, 1, DType::F32},    {3, 4, 2, 16, 16, 7, DType::F16},  {5, 8, 2, 64, 32, 31, DType::F32},
      {4, 6, 3, 31, 17, 257, DType::F16}, {2, 4, 4, 128, 128, 40, DType::F16},
  };
  for (CpuPath p : available_cpu_paths()) {
    force_cpu_path(p);
    uint32_t seed = 1;
    for (const Case& c : cases) run_case(c, pool, seed += 10);
  }
}

// Hand-computed from the documented F16-accumulator rule: two cells with
// equal scores (p = 1 each), V = 1 and 2^-12. acc = f16(1 + 2^-12) = 1 (below
// half an ulp of 1), S = 2, so the output is exactly 0.5; an F32 accumulator
// would give (1 + 2^-12) / 2.
TEST(Attention, F16CacheAccumulatesVInF16OnEveryPath) {
  testing::PathGuard guard;
  ThreadPool pool(1);
  const uint16_t k[2] = {f32_to_fp16(0.0f), f32_to_fp16(0.0f)};
  const uint16_t v[2] = {f32_to_fp16(1.0f), f32_to_fp16(std::ldexp(1.0f, -12))};
  const float q[1] = {1.0f};
  for (CpuPath p : available_cpu_paths()) {
    force_cpu_path(p);
    float out = -1;
    AttentionArgs a;
    a.q = q; a.n_tokens = 1; a.n_head = 1; a.n_kv_head = 1; a.head_dim_k = 1; a.head_dim_v = 1;
    a.kv_type = DType::F16; a.k = k; a.v = v; a.k_row_bytes = 2; a.v_row_bytes = 2; a.n_kv = 2; a.out = &out;
    attention(a, pool);
    EXPECT_EQ(out, 0.5f) << cpu_path_name(p);
  }
}

TEST(Attention, NoMaskMeansAllVisible) {
  ThreadPool pool(1);
  const int dk = 4, n_kv = 3;
  std::vector<float> q = {1, 0, 0, 0}, k(n_kv * dk, 0.0f), v = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  std::vector<float> out(dk);
  AttentionArgs a;
  a.q = q.data(); a.n_tokens = 1; a.n_head = 1; a.n_kv_head = 1; a.head_dim_k = dk; a.head_dim_v = dk;
  a.kv_type = DType::F32; a.k = k.data(); a.v = v.data(); a.k_row_bytes = dk * 4; a.v_row_bytes = dk * 4;
  a.n_kv = n_kv; a.out = out.data();
  attention(a, pool);  // all scores 0: the mean of the values
  for (int i = 0; i < dk; ++i) EXPECT_NEAR(out[i], (v[i] + v[4 + i] + v[8 + i]) / 3.0f, 1e-6);
}

}  // namespace
}  // namespace tandem::kernels
