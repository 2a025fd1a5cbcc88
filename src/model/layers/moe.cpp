// Mixture-of-experts feed-forward: softmax router, top-k experts (SwiGLU),
// optional shared expert.
#include <cstring>

#include "core/profiler.h"
#include "kernels/act_fast.h"
#include "model/layers/layers.h"

namespace tandem::model {

void ffn_moe(Fwd& f, const LayerWeights& lw, bool norm_w, const float* x, float* out) {
  TANDEM_PROF_SECTION(kMoe);  // bench --profile: matmul time by layer part
  const int E = f.cfg.n_embd, X = f.cfg.n_expert, K = f.cfg.n_expert_used, T = f.T;
  float* router = f.s.router.as<float>();   // [T][X]
  int* idx = f.s.sel_idx.as<int>();         // [T][K]
  float* wsel = f.s.sel_w.as<float>();      // [T][K]
  float* gx = f.s.gx.as<float>();           // [n][E] tokens routed to one expert
  float* gy = f.s.gy.as<float>();           // [n][E] their expert output
  float* slot_out = f.s.slot_out.as<float>();  // [T][K][E]
  int* rows = f.s.rows.as<int>();
  int* slots = f.s.slots.as<int>();

  kernels::matmul(lw.ffn_gate_inp, x, T, router, f.pool);
  for (int t = 0; t < T; ++t) {
    kernels::topk_softmax(router + static_cast<size_t>(t) * X, X, K, idx + t * K, wsel + t * K);
    if (norm_w) {
      float sum = 0.0f;
      for (int s = 0; s < K; ++s) sum += wsel[t * K + s];
      for (int s = 0; s < K; ++s) wsel[t * K + s] /= sum;
    }
  }

  // Run each expert once over the tokens routed to it.
  for (int e = 0; e < X; ++e) {
    int n = 0;
    for (int t = 0; t < T; ++t) {
      for (int s = 0; s < K; ++s) {
        if (idx[t * K + s] != e) continue;
        rows[n] = t;
        slots[n] = s;
        std::memcpy(gx + static_cast<size_t>(n) * E, x + static_cast<size_t>(t) * E, sizeof(float) * E);
        ++n;
      }
    }
    if (n == 0) continue;
    const int F = static_cast<int>(lw.gate_exps[e].rows);
    float* a = f.s.ffa.as<float>();  // [n][F]
    float* b = f.s.ffb.as<float>();
    kernels::matmul(lw.gate_exps[e], gx, n, a, f.pool);
    kernels::matmul(lw.up_exps[e], gx, n, b, f.pool);
    kernels::swiglu_fast(a, b, a, n * F);
    kernels::matmul(lw.down_exps[e], a, n, gy, f.pool);
    for (int j = 0; j < n; ++j) {
      float* dst = slot_out + (static_cast<size_t>(rows[j]) * K + slots[j]) * E;
      std::memcpy(dst, gy + static_cast<size_t>(j) * E, sizeof(float) * E);
    }
  }

  // Weighted sum in slot order (each expert output scaled, then summed).
  for (int t = 0; t < T; ++t) {
    float* o = out + static_cast<size_t>(t) * E;
    for (int s = 0; s < K; ++s) {
      float* so = slot_out + (static_cast<size_t>(t) * K + s) * E;
      kernels::scale(so, wsel[t * K + s], E);
      if (s == 0) {
        std::memcpy(o, so, sizeof(float) * E);
      } else {
        kernels::add(o, so, o, E);
      }
    }
  }

  if (present(lw.ffn_up_shexp)) {
    ffn_swiglu(f, lw.ffn_gate_shexp, Vec{}, lw.ffn_up_shexp, Vec{}, lw.ffn_down_shexp, Vec{}, x, gy);
    kernels::add(out, gy, out, T * E);
  }
}

}  // namespace tandem::model
