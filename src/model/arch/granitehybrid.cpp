// granitehybrid (Granite-4.0-H, DESIGN.md §3.3): h0 = emb · embedding_scale;
// per layer RMSNorm → Mamba2 (head_count_kv[i] == 0) or attention (NoPE unless
// rope.scaling.finetuned) → h += residual_scale · mixer; RMSNorm → SwiGLU or
// MoE (renormalised top-k, + shared expert) → h += residual_scale · ffn.
// Logits are divided by logit_scale (runner).
#include "model/arch/arch.h"
#include "model/config.h"
#include "model/layers/block.h"

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

// The block's knobs for this architecture.
PrenormBlock style(const ModelConfig& c) {
  return PrenormBlock{.rope = c.use_rope, .moe_renormalise = true, .residual_scale = c.residual_scale};
}

Status bind(Binder& b, const ModelConfig& c, Weights& w) {
  for (int il = 0; il < c.n_layer; ++il) TANDEM_TRY(bind_prenorm_block(b, c, il, w.layers[il], style(c)));
  return Status::ok();
}

Status layer(Fwd& f, int il) { return prenorm_block(f, il, style(f.cfg)); }

}  // namespace

const ArchOps& granitehybrid_arch() {
  static const ArchOps ops{"granitehybrid", configure, bind, layer};
  return ops;
}

}  // namespace tandem::model
