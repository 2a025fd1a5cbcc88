// jamba: RMSNorm → Mamba1 with dt/B/C RMS norms (head_count_kv[i] == 0) or
// attention without RoPE → residual; RMSNorm → SwiGLU, or MoE where
// blk.N.ffn_gate_inp exists (softmax top-k, weights NOT renormalised) → residual.
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
      c.mixer[il] = MixerKind::kMamba1;
      any_ssm = true;
    } else {
      TANDEM_TRY(require_attention(f, c, il));
      c.mixer[il] = MixerKind::kAttention;
    }
    const bool moe = f.find_tensor(blk(il, "ffn_gate_inp.weight")) != nullptr;
    c.ffn[il] = moe ? FfnKind::kMoE : FfnKind::kSwiGLU;
  }
  if (any_ssm) TANDEM_TRY(require_ssm(f, c, /*mamba2=*/false));
  c.use_rope = false;
  return Status::ok();
}

Status bind(Binder& b, const ModelConfig& c, Weights& w) {
  for (int il = 0; il < c.n_layer; ++il) {
    LayerWeights& lw = w.layers[il];
    TANDEM_TRY(bind_norm(b, c, blk(il, "attn_norm.weight"), &lw.attn_norm));
    if (c.mixer[il] == MixerKind::kMamba1) {
      TANDEM_TRY(bind_mamba1(b, c, il, lw, /*bc_norms=*/true));
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
  if (c.mixer[il] == MixerKind::kMamba1) {
    TANDEM_TRY(mamba1_mixer(f, lw, il, f.xn(), f.mix()));
  } else {
    TANDEM_TRY(attention_mixer(f, lw, il, f.xn(), f.mix(), /*rope=*/false));
  }
  residual_add(f.h(), f.mix(), 1.0f, f.T, E);
  norm_rows(f.h(), lw.ffn_norm, f.xn(), f.T, E, c.norm_eps);
  if (c.ffn[il] == FfnKind::kMoE) {
    ffn_moe(f, lw, /*norm_w=*/false, f.xn(), f.ffo());
  } else {
    ffn_swiglu(f, lw.ffn_gate, lw.ffn_gate_b, lw.ffn_up, lw.ffn_up_b, lw.ffn_down, lw.ffn_down_b, f.xn(), f.ffo());
  }
  residual_add(f.h(), f.ffo(), 1.0f, f.T, E);
  return Status::ok();
}

}  // namespace

const ArchOps& jamba_arch() {
  static const ArchOps ops{"jamba", configure, bind, layer};
  return ops;
}

}  // namespace tandem::model
