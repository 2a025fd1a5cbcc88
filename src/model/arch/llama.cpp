// llama: RMSNorm → attention (RoPE, adjacent-pair rotation, GQA) → residual;
// RMSNorm → SwiGLU FFN (or softmax top-k MoE) → residual.
#include "model/arch/arch.h"
#include "model/config.h"
#include "model/layers/bind.h"
#include "model/layers/layers.h"

namespace tandem::model {
namespace {

Status configure(const gguf::File& f, ModelConfig& c) {
  for (int il = 0; il < c.n_layer; ++il) {
    TANDEM_TRY(require_attention(f, c, il));
    c.mixer[il] = MixerKind::kAttention;
    c.ffn[il] = c.n_expert > 0 ? FfnKind::kMoE : FfnKind::kSwiGLU;
  }
  c.use_rope = true;
  c.rope.style = kernels::RopeStyle::kNormal;
  return Status::ok();
}

Status bind(Binder& b, const ModelConfig& c, Weights& w) {
  for (int il = 0; il < c.n_layer; ++il) {
    LayerWeights& lw = w.layers[il];
    TANDEM_TRY(bind_norm(b, c, blk(il, "attn_norm.weight"), &lw.attn_norm));
    TANDEM_TRY(bind_attention(b, c, il, lw));
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
  TANDEM_TRY(attention_mixer(f, lw, il, f.xn(), f.mix(), /*rope=*/true));
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

const ArchOps& llama_arch() {
  static const ArchOps ops{"llama", configure, bind, layer};
  return ops;
}

}  // namespace tandem::model
