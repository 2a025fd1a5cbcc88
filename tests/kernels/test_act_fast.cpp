// act_fast.h (vectorized SiLU products) against the scalar twins with std::exp.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/act_fast.h"
#include "kernels/kernels.h"
#include "test_util.h"

namespace tandem::kernels {
namespace {

std::vector<float> inputs(int n, uint32_t seed) {
  std::vector<float> g = testing::uniform(static_cast<size_t>(n), seed, -30.0f, 30.0f);
  const float edges[] = {0.0f, -0.0f, 1e-3f, -1e-3f, 87.5f, -87.5f, 100.0f, -100.0f, 1e30f, -1e30f, 20.0f, -20.0f};
  for (size_t i = 0; i < g.size() && i < sizeof(edges) / sizeof(edges[0]); ++i) g[i * 3 % g.size()] = edges[i];
  return g;
}

TEST(ActFast, SwigluAndSiluEveryPathMatchScalar) {
  testing::PathGuard guard;
  for (int n : {1, 7, 8, 15, 16, 17, 33, 1536, 2048}) {
    const std::vector<float> g = inputs(n, 11 + n), u = testing::randn(static_cast<size_t>(n), 3 + n);
    std::vector<float> ref(g.size()), ref_s = g;
    swiglu(g.data(), u.data(), ref.data(), n);
    silu(ref_s.data(), n);
    for (CpuPath p : available_cpu_paths()) {
      force_cpu_path(p);
      std::vector<float> out(g.size()), s = g, alias = g;
      swiglu_fast(g.data(), u.data(), out.data(), n);
      swiglu_fast(alias.data(), u.data(), alias.data(), n);  // out aliases gate
      silu_fast(s.data(), n);
      for (int i = 0; i < n; ++i) {
        // relative 4e-7 (a few ulp of the polynomial exp); the 1e-36 floor covers
        // silu(g) for g near -88, where exp(-g) is at the edge of the float range
        const double tol_o = 4e-7 * std::fabs(ref[i]) + 1e-36, tol_s = 4e-7 * std::fabs(ref_s[i]) + 1e-36;
        ASSERT_NEAR(out[i], ref[i], tol_o) << cpu_path_name(p) << " n " << n << " g " << g[i];
        ASSERT_EQ(alias[i], out[i]) << cpu_path_name(p) << " n " << n;
        ASSERT_NEAR(s[i], ref_s[i], tol_s) << cpu_path_name(p) << " n " << n << " x " << g[i];
      }
    }
  }
}

// Hand values: silu(0) = 0, silu(x) -> x for large x, silu(ln 3) = ln3 * 3/4.
TEST(ActFast, SiluHandValues) {
  testing::PathGuard guard;
  for (CpuPath p : available_cpu_paths()) {
    force_cpu_path(p);
    std::vector<float> x = {0.0f, 50.0f, std::log(3.0f), -std::log(3.0f)};
    silu_fast(x.data(), static_cast<int>(x.size()));
    EXPECT_EQ(x[0], 0.0f) << cpu_path_name(p);
    EXPECT_FLOAT_EQ(x[1], 50.0f) << cpu_path_name(p);
    EXPECT_NEAR(x[2], std::log(3.0f) * 0.75f, 1e-6f) << cpu_path_name(p);
    EXPECT_NEAR(x[3], -std::log(3.0f) * 0.25f, 1e-6f) << cpu_path_name(p);
  }
}

}  // namespace
}  // namespace tandem::kernels
