#include "model/layers/block.h"

#include "model/config.h"
#include "model/layers/bind.h"
#include "model/layers/layers.h"

namespace tandem::model {

Status bind_prenorm_block(Binder& b, const ModelConfig& c, int il, LayerWeights& lw, const PrenormBlock& s) {
  TANDEM_TRY(bind_norm(b, c, blk(il, "attn_norm.weight"), &lw.attn_norm));
  switch (c.mixer[il]) {
    case MixerKind::kAttention: TANDEM_TRY(bind_attention(b, c, il, lw)); break;
    case MixerKind::kMamba1: TANDEM_TRY(bind_mamba1(b, c, il, lw, s.mamba1_bc_norms)); break;
    case MixerKind::kMamba2: TANDEM_TRY(bind_mamba2(b, c, il, lw, /*norm_optional=*/false)); break;
    default: return TANDEM_ERR(kInternal, "layer {}: a pre-norm block needs an attention or Mamba mixer", il);
  }
  TANDEM_TRY(bind_norm(b, c, blk(il, "ffn_norm.weight"), &lw.ffn_norm));
  return c.ffn[il] == FfnKind::kMoE ? bind_moe(b, c, il, lw) : bind_swiglu(b, c, il, lw);
}

Status prenorm_block(Fwd& f, int il, const PrenormBlock& s) {
  const ModelConfig& c = f.cfg;
  const LayerWeights& lw = f.w.layers[il];
  const int E = c.n_embd;
  norm_rows(f.h(), lw.attn_norm, f.xn(), f.T, E, c.norm_eps);
  switch (c.mixer[il]) {
    case MixerKind::kAttention: TANDEM_TRY(attention_mixer(f, lw, il, f.xn(), f.mix(), s.rope)); break;
    case MixerKind::kMamba1: TANDEM_TRY(mamba1_mixer(f, lw, il, f.xn(), f.mix())); break;
    case MixerKind::kMamba2: TANDEM_TRY(mamba2_mixer(f, lw, il, f.xn(), f.mix())); break;
    default: return TANDEM_ERR(kInternal, "layer {}: a pre-norm block needs an attention or Mamba mixer", il);
  }
  residual_add(f.h(), f.mix(), s.residual_scale, f.T, E);
  norm_rows(f.h(), lw.ffn_norm, f.xn(), f.T, E, c.norm_eps);
  if (c.ffn[il] == FfnKind::kMoE) {
    ffn_moe(f, lw, s.moe_renormalise, f.xn(), f.ffo());
  } else {
    ffn_swiglu(f, lw.ffn_gate, lw.ffn_gate_b, lw.ffn_up, lw.ffn_up_b, lw.ffn_down, lw.ffn_down_b, f.xn(), f.ffo());
  }
  residual_add(f.h(), f.ffo(), s.residual_scale, f.T, E);
  return Status::ok();
}

}  // namespace tandem::model
