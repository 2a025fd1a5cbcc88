// Activation scratch sizing: every buffer holds max_tokens rows of its widest use.
#include <algorithm>

#include "model/layers/fwd.h"

namespace tandem::model {

void Scratch::allocate(const ModelConfig& c, int max_tok) {
  max_tokens = max_tok;
  const size_t T = static_cast<size_t>(max_tok);
  const size_t E = static_cast<size_t>(c.n_embd);
  auto f32 = [](size_t n) { return std::max<size_t>(n, 1) * sizeof(float); };

  int max_h = 0, max_kv = 0, max_ff = std::max(c.n_ff_shexp, 0);
  bool mamba1 = false, mamba2 = false;
  for (int il = 0; il < c.n_layer; ++il) {
    const MixerKind m = c.mixer[il];
    if (m == MixerKind::kAttention || m == MixerKind::kAttnMamba2) {
      max_h = std::max(max_h, c.n_head[il]);
      max_kv = std::max(max_kv, c.n_head_kv[il]);
    }
    mamba1 |= m == MixerKind::kMamba1;
    mamba2 |= m == MixerKind::kMamba2 || m == MixerKind::kAttnMamba2;
    if (c.ffn[il] != FfnKind::kNone) max_ff = std::max(max_ff, c.n_ff[il]);
  }
  const size_t DI = c.ssm_d_inner, N = c.ssm_d_state, R = c.ssm_dt_rank, G = c.ssm_n_group;
  size_t proj_w = 0, conv_w = 0;
  if (mamba1) {
    proj_w = std::max(proj_w, 2 * DI);
    conv_w = std::max(conv_w, DI);
  }
  if (mamba2) {
    const size_t ch = DI + 2 * G * N;
    proj_w = std::max(proj_w, DI + ch + R);
    conv_w = std::max(conv_w, ch);
  }

  h.resize(f32(T * E));
  xn.resize(f32(T * E));
  mix.resize(f32(T * E));
  mix2.resize(f32(T * E));
  ffo.resize(f32(T * E));
  q.resize(f32(T * max_h * c.head_dim_k));
  k.resize(f32(T * max_kv * c.head_dim_k));
  v.resize(f32(T * max_kv * c.head_dim_v));
  att.resize(f32(T * max_h * c.head_dim_v));
  proj.resize(f32(T * proj_w));
  conv.resize(f32(T * conv_w));
  y.resize(f32(mamba1 || mamba2 ? T * DI : 0));
  xdb.resize(f32(mamba1 ? T * (R + 2 * N) : 0));
  dt.resize(f32(mamba1 ? T * DI : 0));
  dtin.resize(f32(mamba1 ? T * R : 0));
  ffa.resize(f32(T * max_ff));
  ffb.resize(f32(T * max_ff));
  const size_t X = c.n_expert, K = c.n_expert_used;
  router.resize(f32(T * X));
  sel_idx.resize(f32(T * K));
  sel_w.resize(f32(T * K));
  // Experts run on the tokens routed to them: at most T rows each.
  gx.resize(f32(T * E));
  gy.resize(f32(T * E));
  slot_out.resize(f32(X > 0 ? T * K * E : 0));
  rows.resize(f32(T));
  slots.resize(f32(T));
  // Logits are produced in chunks so that a 100k vocabulary does not need T rows.
  logit_chunk = static_cast<int>(std::min<size_t>(T, 32));
  outn.resize(f32(logit_chunk * E));
  logits.resize(f32(static_cast<size_t>(logit_chunk) * c.n_vocab));
}

}  // namespace tandem::model
