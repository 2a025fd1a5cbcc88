// granitehybrid (Granite-4.0-H, DESIGN.md §3.3): h0 = emb · embedding_scale;
// per layer RMSNorm → Mamba2 (head_count_kv[i] == 0) or attention (NoPE unless
// rope.scaling.finetuned) → h += residual_scale · mixer; RMSNorm → SwiGLU or
// MoE (renormalised top-k, + shared expert) → h += residual_scale · ffn.
// Logits are divided by logit_scale (runner).
#include "model/arch/arch.h"
#include "model/config.h"
#include "model/layers/bind.h"
#include "model/layers/layers.h"

namespace tandem::model {
namespace {

Status configure(const gguf::File& f, ModelConfig& c) {
  bool any_ssm = false;
  for (int il = 0; il < c.n_layer; ++il) {
    if (c.n_head_kv[il] == 0) {
      c.mixer[il] = MixerKind::kMamba2;
      any_ssm = true;
    } else {
      TANDEM_TRY(require_attention(f, c, il));
      c.mixer[il] = MixerKind::kAttention;
    }
    c.ffn[il] = c.n_expert > 0 ? FfnKind::kMoE : FfnKind::kSwiGLU;
  }
  if (any_ssm) TANDEM_TRY(require_ssm(f, c, /*mamba2=*/true));
  c.use_rope = c.rope_finetuned;
  c.rope.style = kernels::RopeStyle::kNormal;
  return Status::ok();
}

Status bind(Binder& b, const ModelConfig& c, Weights& w) {
  for (int il = 0; il < c.n_layer; ++il) {
    LayerWeights& lw = w.layers[il];
    TANDEM_TRY(bind_norm(b, c, blk(il, "attn_norm.weight"), &lw.attn_norm));
    if (c.mixer[il] == MixerKind::kMamba2) {
      TANDEM_TRY(bind_mamba2(b, c, il, lw, /*norm_optional=*/false));
    } else {
      TANDEM_TRY(bind_attention(b, c, il, lw));
    }
    TANDEM_TRY(bind_norm(b, c, blk(il, "ffn_norm.weight"), &lw.ffn_norm));
    TANDEM_TRY(c.ffn[il] == FfnKind::kMoE ? bind_moe(b, c, il, lw) : bind_swiglu(b, c, il, lw));
  }
  return Status::ok();
}

Status layer(Fwd& f, int il) {
  const ModelConfig& c = f.cfg;
  const LayerWeights& lw = f.w.layers[il];
  const int E = c.n_embd;
  norm_rows(f.h(), lw.attn_norm, f.xn(), f.T, E, c.norm_eps);
  if (c.mixer[il] == MixerKind::kMamba2) {
    TANDEM_TRY(mamba2_mixer(f, lw, il, f.xn(), f.mix()));
  } else {
    TANDEM_TRY(attention_mixer(f, lw, il, f.xn(), f.mix(), c.use_rope));
  }
  residual_add(f.h(), f.mix(), c.residual_scale, f.T, E);
  norm_rows(f.h(), lw.ffn_norm, f.xn(), f.T, E, c.norm_eps);
  if (c.ffn[il] == FfnKind::kMoE) {
    ffn_moe(f, lw, /*norm_w=*/true, f.xn(), f.ffo());
  } else {
    ffn_swiglu(f, lw.ffn_gate, lw.ffn_gate_b, lw.ffn_up, lw.ffn_up_b, lw.ffn_down, lw.ffn_down_b, f.xn(), f.ffo());
  }
  residual_add(f.h(), f.ffo(), c.residual_scale, f.T, E);
  return Status::ok();
}

}  // namespace

const ArchOps& granitehybrid_arch() {
  static const ArchOps ops{"granitehybrid", configure, bind, layer};
  return ops;
}

}  // namespace tandem::model
