#pragma once
// Shared layer builders (DESIGN.md §3). Each takes the layer's normed input
// x [T][n_embd] and writes the branch output out [T][n_embd]; residual adds
// and scales are the architecture's business (src/model/arch/).
#include "core/status.h"
#include "model/layers/fwd.h"
#include "model/weights.h"

namespace tandem::model {

// y[t] = RMSNorm(x[t]) * w for T rows of n features (x may alias y).
void norm_rows(const float* x, const Vec& w, float* y, int T, int n, float eps);
// y = W·x (+ b): x [T][W.cols] -> y [T][W.rows].
void linear(Fwd& f, const kernels::Matrix& W, const Vec& b, const float* x, float* y);
// h[t] += scale * branch[t] for T rows of n (scale applied first, as the reference does).
void residual_add(float* h, float* branch, float scale, int T, int n);

// Grouped-query attention over the layer's KvView: projects Q/K/V, applies RoPE
// when `rope` (at ub.pos), stores K/V of the micro-batch into the view's
// dst_cells (F16 or F32 per view.type), attends with the view's mask, projects out.
Status attention_mixer(Fwd& f, const LayerWeights& lw, int il, const float* x, float* out, bool rope);
// Mamba1 mixer (DESIGN.md §3.2). dt/B/C RMS norms when lw.ssm_dt_norm is bound (Jamba).
Status mamba1_mixer(Fwd& f, const LayerWeights& lw, int il, const float* x, float* out);
// Its core between the projections: xz [T][2*d_inner] (in_proj output, x | z)
// -> y [T][d_inner] (gated scan output, before out_proj). Intermediates stay in
// the scratch: conv output in s.conv, dt|B|C (after norms) in s.xdb, dt in s.dt.
Status mamba1_core(Fwd& f, const LayerWeights& lw, int il, const float* xz, float* y);
// Mamba2 mixer (DESIGN.md §3.1).
Status mamba2_mixer(Fwd& f, const LayerWeights& lw, int il, const float* x, float* out);

// out = down · (silu(gate·x + bg) * (up·x + bu)) + bd
void ffn_swiglu(Fwd& f, const kernels::Matrix& gate, const Vec& bg, const kernels::Matrix& up, const Vec& bu,
                const kernels::Matrix& down, const Vec& bd, const float* x, float* out);
// out = down · relu(up·x + bu)^2 + bd
void ffn_relu2(Fwd& f, const kernels::Matrix& up, const Vec& bu, const kernels::Matrix& down, const Vec& bd,
               const float* x, float* out);
// Softmax top-k routed SwiGLU experts; `norm_w` renormalises the selected
// probabilities to sum to 1 (Granite) or keeps them (Jamba). Adds the shared
// expert when lw.ffn_up_shexp is bound.
void ffn_moe(Fwd& f, const LayerWeights& lw, bool norm_w, const float* x, float* out);

}  // namespace tandem::model
