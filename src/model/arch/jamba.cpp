// jamba: RMSNorm → Mamba1 with dt/B/C RMS norms (head_count_kv[i] == 0) or
// attention without RoPE → residual; RMSNorm → SwiGLU, or MoE where
// blk.N.ffn_gate_inp exists (softmax top-k, weights NOT renormalised) → residual.
#include "model/arch/arch.h"
#include "model/arch/arch_common.h"
#include "model/config.h"

namespace tandem::model {
namespace {

Status configure(const gguf::File& f, ModelConfig& c) {
  TANDEM_TRY(configure_kv_marked_mixers(f, c, MixerKind::kMamba1));
  for (int il = 0; il < c.n_layer; ++il) {
    const bool moe = f.find_tensor(blk(il, "ffn_gate_inp.weight")) != nullptr;
    c.ffn[il] = moe ? FfnKind::kMoE : FfnKind::kSwiGLU;
  }
  c.use_rope = false;
  return Status::ok();
}

// The block's knobs for this architecture.
PrenormBlock style(const ModelConfig&) {
  return PrenormBlock{.rope = false, .moe_renormalise = false, .residual_scale = 1.0f, .mamba1_bc_norms = true};
}

}  // namespace

const ArchOps& jamba_arch() {
  static const ArchOps ops{"jamba", configure, PrenormArch<style>::bind, PrenormArch<style>::layer};
  return ops;
}

}  // namespace tandem::model
