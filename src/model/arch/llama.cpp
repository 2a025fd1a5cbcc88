// llama: RMSNorm → attention (RoPE, adjacent-pair rotation, GQA) → residual;
// RMSNorm → SwiGLU FFN (or softmax top-k MoE) → residual.
#include "model/arch/arch.h"
#include "model/config.h"
#include "model/layers/block.h"

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

// The block's knobs for this architecture.
PrenormBlock style(const ModelConfig&) {
  return PrenormBlock{.rope = true, .moe_renormalise = false, .residual_scale = 1.0f};
}

Status bind(Binder& b, const ModelConfig& c, Weights& w) {
  for (int il = 0; il < c.n_layer; ++il) TANDEM_TRY(bind_prenorm_block(b, c, il, w.layers[il], style(c)));
  return Status::ok();
}

Status layer(Fwd& f, int il) { return prenorm_block(f, il, style(f.cfg)); }

}  // namespace

const ArchOps& llama_arch() {
  static const ArchOps ops{"llama", configure, bind, layer};
  return ops;
}

}  // namespace tandem::model
