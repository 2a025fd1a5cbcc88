// Row helpers and the dense feed-forward builders (SwiGLU, ReLU²).
#include "core/profiler.h"
#include "kernels/act_fast.h"
#include "model/layers/layers.h"

namespace tandem::model {

void norm_rows(const float* x, const Vec& w, float* y, int T, int n, float eps) {
  for (int t = 0; t < T; ++t) {
    kernels::rms_norm(x + static_cast<size_t>(t) * n, w.data, y + static_cast<size_t>(t) * n, n, eps);
  }
}

void linear(Fwd& f, const kernels::Matrix& W, const Vec& b, const float* x, float* y) {
  kernels::matmul(W, x, f.T, y, f.pool);
  if (b) {
    const int n = static_cast<int>(W.rows);
    for (int t = 0; t < f.T; ++t) {
      float* row = y + static_cast<size_t>(t) * n;
      kernels::add(row, b.data, row, n);
    }
  }
}

void residual_add(float* h, float* branch, float scale, int T, int n) {
  const size_t total = static_cast<size_t>(T) * n;
  // The reference scales the branch (rounding once) and then adds it.
  if (scale != 1.0f) kernels::scale(branch, scale, static_cast<int>(total));
  kernels::add(h, branch, h, static_cast<int>(total));
}

void ffn_swiglu(Fwd& f, const kernels::Matrix& gate, const Vec& bg, const kernels::Matrix& up, const Vec& bu,
                const kernels::Matrix& down, const Vec& bd, const float* x, float* out) {
  TANDEM_PROF_SECTION(kFfn);  // bench --profile: matmul time by layer part
  const int F = static_cast<int>(gate.rows);
  float* a = f.s.ffa.as<float>();  // [T][F]
  float* b = f.s.ffb.as<float>();  // [T][F]
  linear(f, gate, bg, x, a);
  linear(f, up, bu, x, b);
  kernels::swiglu_fast(a, b, a, f.T * F);
  linear(f, down, bd, a, out);
}

void ffn_relu2(Fwd& f, const kernels::Matrix& up, const Vec& bu, const kernels::Matrix& down, const Vec& bd,
               const float* x, float* out) {
  TANDEM_PROF_SECTION(kFfn);  // bench --profile: matmul time by layer part
  const int F = static_cast<int>(up.rows);
  float* a = f.s.ffa.as<float>();  // [T][F]
  linear(f, up, bu, x, a);
  kernels::relu_sqr(a, f.T * F);
  linear(f, down, bd, a, out);
}

}  // namespace tandem::model
