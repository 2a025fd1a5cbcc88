// llama: RMSNorm → attention (RoPE, adjacent-pair rotation, GQA) → residual;
// RMSNorm → SwiGLU FFN (or softmax top-k MoE) → residual.
#include "model/arch/arch.h"
#include "model/arch/arch_common.h"
#include "model/config.h"

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

}  // namespace

const ArchOps& llama_arch() {
  static const ArchOps ops{"llama", configure, PrenormArch<style>::bind, PrenormArch<style>::layer};
  return ops;
}

}  // namespace tandem::model
