// Element-wise and normalisation layer ops (scalar; these are bandwidth-light
// next to matmul). Op order follows the reference engine where it matters.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/profiler.h"
#include "kernels/kernels.h"

namespace tandem::kernels {

void rms_norm(const float* x, const float* w, float* y, int n, float eps) {
  TANDEM_PROF_OP(kNorm);  // bench --profile (core/profiler.h)
  // mean of squares accumulated in double, as the reference does
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float mean = static_cast<float>(sum / n);
  const float s = 1.0f / std::sqrt(mean + eps);
  if (w) {
    for (int i = 0; i < n; ++i) y[i] = (x[i] * s) * w[i];
  } else {
    for (int i = 0; i < n; ++i) y[i] = x[i] * s;
  }
}

void group_rms_norm(const float* x, const float* w, float* y, int n, int group, float eps) {
  for (int g = 0; g < n; g += group) rms_norm(x + g, w ? w + g : nullptr, y + g, group, eps);
}

void rope(float* x, int n_heads, int head_dim, float pos, const RopeParams& p) {
  TANDEM_PROF_OP(kRope);  // bench --profile (core/profiler.h)
  // theta_i = pos * base^(-2i/n_rot), built by repeated multiplication (as the
  // reference caches it), times freq_scale.
  const int n_rot = std::min(p.n_rot, head_dim);
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(n_rot));
  float cs[512], sn[512];
  std::vector<float> big_c, big_s;
  float* c = cs;
  float* s = sn;
  if (n_rot / 2 > 512) {
    big_c.resize(n_rot / 2);
    big_s.resize(n_rot / 2);
    c = big_c.data();
    s = big_s.data();
  }
  float theta = pos;
  for (int i = 0; i < n_rot / 2; ++i) {
    const float t = theta * p.freq_scale;
    c[i] = std::cos(t);
    s[i] = std::sin(t);
    theta *= theta_scale;
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<size_t>(h) * head_dim;
    for (int i = 0; i < n_rot / 2; ++i) {
      const int a = p.style == RopeStyle::kNormal ? 2 * i : i;
      const int b = p.style == RopeStyle::kNormal ? 2 * i + 1 : i + n_rot / 2;
      const float x0 = v[a], x1 = v[b];
      v[a] = x0 * c[i] - x1 * s[i];
      v[b] = x0 * s[i] + x1 * c[i];
    }
  }
}

void silu(float* x, int n) {
  for (int i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
}

void swiglu(const float* gate, const float* up, float* out, int n) {
  for (int i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void relu_sqr(float* x, int n) {
  for (int i = 0; i < n; ++i) {
    const float r = x[i] > 0 ? x[i] : 0.0f;
    x[i] = r * r;
  }
}

void softmax(float* x, int n) {
  if (n <= 0) return;
  float mx = -INFINITY;
  for (int i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

void add(const float* a, const float* b, float* out, int n) {
  for (int i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void scale(float* x, float s, int n) {
  for (int i = 0; i < n; ++i) x[i] *= s;
}

void add_scaled(float* acc, const float* x, float s, int n) {
  for (int i = 0; i < n; ++i) acc[i] += s * x[i];
}

void topk_softmax(const float* logits, int n, int k, int* idx, float* w) {
  std::vector<float> p(logits, logits + n);
  softmax(p.data(), n);
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  k = std::min(k, n);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
    return p[a] > p[b] || (p[a] == p[b] && a < b);
  });
  for (int i = 0; i < k; ++i) {
    idx[i] = order[i];
    w[i] = p[order[i]];
  }
}

}  // namespace tandem::kernels
