// Layer ops against their textbook definitions (double precision).
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/kernels.h"
#include "test_util.h"

namespace tandem::kernels {
namespace {
using testing::randn;

TEST(Ops, RmsNormMatchesDefinition) {
  for (int n : {1, 3, 31, 257}) {
    std::vector<float> x = randn(n, n), w = randn(n, n + 1), y(n);
    rms_norm(x.data(), w.data(), y.data(), n, 1e-6f);
    double ms = 0;
    for (float v : x) ms += double(v) * v;
    ms /= n;
    for (int i = 0; i < n; ++i) EXPECT_NEAR(y[i], x[i] / std::sqrt(ms + 1e-6) * w[i], 1e-5 * std::fabs(y[i]) + 1e-6);
    std::vector<float> z = x;  // in place, no weight
    rms_norm(z.data(), nullptr, z.data(), n, 1e-6f);
    for (int i = 0; i < n; ++i) EXPECT_NEAR(z[i], x[i] / std::sqrt(ms + 1e-6), 1e-5 * std::fabs(z[i]) + 1e-6);
  }
}

TEST(Ops, GroupRmsNormNormalisesEachGroup) {
  const int n = 12, group = 4;
  std::vector<float> x = randn(n, 1), w = randn(n, 2), y(n), part(group);
  group_rms_norm(x.data(), w.data(), y.data(), n, group, 1e-5f);
  for (int g = 0; g < n; g += group) {
    rms_norm(x.data() + g, w.data() + g, part.data(), group, 1e-5f);
    for (int i = 0; i < group; ++i) EXPECT_EQ(y[g + i], part[i]);
  }
}

TEST(Ops, RopeRotatesPairsByPositionAngle) {
  for (RopeStyle style : {RopeStyle::kNormal, RopeStyle::kNeox}) {
    const int heads = 2, hd = 10, n_rot = 8;
    std::vector<float> x = randn(heads * hd, 3), y = x;
    RopeParams p;
    p.style = style;
    p.n_rot = n_rot;
    p.freq_base = 10000.0f;
    p.freq_scale = 0.5f;
    const float pos = 7.0f;
    rope(y.data(), heads, hd, pos, p);
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < n_rot / 2; ++i) {
        const double theta = pos * 0.5 * std::pow(10000.0, -2.0 * i / n_rot);
        const int a = style == RopeStyle::kNormal ? 2 * i : i;
        const int b = style == RopeStyle::kNormal ? 2 * i + 1 : i + n_rot / 2;
        const double x0 = x[h * hd + a], x1 = x[h * hd + b];
        EXPECT_NEAR(y[h * hd + a], x0 * std::cos(theta) - x1 * std::sin(theta), 1e-5);
        EXPECT_NEAR(y[h * hd + b], x0 * std::sin(theta) + x1 * std::cos(theta), 1e-5);
      }
      for (int i = n_rot; i < hd; ++i) EXPECT_EQ(y[h * hd + i], x[h * hd + i]);  // pass-through dims
    }
  }
}

TEST(Ops, ElementwiseDefinitions) {
  const int n = 37;
  std::vector<float> a = randn(n, 4), b = randn(n, 5), out(n);
  std::vector<float> s = a;
  silu(s.data(), n);
  swiglu(a.data(), b.data(), out.data(), n);
  for (int i = 0; i < n; ++i) {
    const double sg = a[i] / (1 + std::exp(-double(a[i])));
    EXPECT_NEAR(s[i], sg, 1e-6);
    EXPECT_NEAR(out[i], sg * b[i], 1e-5);
  }
  std::vector<float> r = a;
  relu_sqr(r.data(), n);
  for (int i = 0; i < n; ++i) EXPECT_FLOAT_EQ(r[i], a[i] > 0 ? a[i] * a[i] : 0.0f);
  add(a.data(), b.data(), out.data(), n);
  for (int i = 0; i < n; ++i) EXPECT_FLOAT_EQ(out[i], a[i] + b[i]);
  std::vector<float> c = a;
  scale(c.data(), 3.0f, n);
  for (int i = 0; i < n; ++i) EXPECT_FLOAT_EQ(c[i], a[i] * 3.0f);
  c = a;
  add_scaled(c.data(), b.data(), 0.5f, n);
  for (int i = 0; i < n; ++i) EXPECT_FLOAT_EQ(c[i], a[i] + 0.5f * b[i]);
}

TEST(Ops, SoftmaxAndTopK) {
  std::vector<float> x = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};
  std::vector<float> p = x;
  softmax(p.data(), 5);
  double z = 0;
  for (float v : x) z += std::exp(double(v));
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(p[i], std::exp(double(x[i])) / z, 1e-7);
  int idx[3];
  float w[3];
  topk_softmax(x.data(), 5, 3, idx, w);
  EXPECT_EQ(idx[0], 1);  // tie between 1 and 3: lower index first
  EXPECT_EQ(idx[1], 3);
  EXPECT_EQ(idx[2], 2);
  EXPECT_NEAR(w[0], p[1], 1e-7);
  EXPECT_NEAR(w[2], p[2], 1e-7);
  std::vector<float> big = {1000.0f, 999.0f};  // no overflow
  softmax(big.data(), 2);
  EXPECT_NEAR(big[0], 1 / (1 + std::exp(-1.0)), 1e-6);
}

}  // namespace
}  // namespace tandem::kernels
