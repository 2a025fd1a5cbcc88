// granitehybrid (Granite-4.0-H, DESIGN.md §3.3): h0 = emb · embedding_scale;
// per layer RMSNorm → Mamba2 (head_count_kv[i] == 0) or attention (NoPE unless
// rope.scaling.finetuned) → h += residual_scale · mixer; RMSNorm → SwiGLU or
// MoE (renormalised top-k, + shared expert) → h += residual_scale · ffn.
// Logits are divided by logit_scale (runner).
#include "model/arch/arch.h"
#include "model/arch/arch_common.h"
#include "model/config.h"

namespace tandem::model {
namespace {

Status configure(const gguf::File& f, ModelConfig& c) {
  TANDEM_TRY(configure_kv_marked_mixers(f, c, MixerKind::kMamba2));
  for (int il = 0; il < c.n_layer; ++il) c.ffn[il] = c.n_expert > 0 ? FfnKind::kMoE : FfnKind::kSwiGLU;
  c.use_rope = c.rope_finetuned;
  c.rope.style = kernels::RopeStyle::kNormal;
  return Status::ok();
}

// The block's knobs for this architecture.
PrenormBlock style(const ModelConfig& c) {
  return PrenormBlock{.rope = c.use_rope, .moe_renormalise = true, .residual_scale = c.residual_scale};
}

}  // namespace

const ArchOps& granitehybrid_arch() {
  static const ArchOps ops{"granitehybrid", configure, PrenormArch<style>::bind, PrenormArch<style>::layer};
  return ops;
}

}  // namespace tandem::model
