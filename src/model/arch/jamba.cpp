// jamba: RMSNorm → Mamba1 with dt/B/C RMS norms (head_count_kv[i] == 0) or
// attention without RoPE → residual; RMSNorm → SwiGLU, or MoE where
// blk.N.ffn_gate_inp exists (softmax top-k, weights NOT renormalised) → residual.
#include "model/arch/arch.h"
#include "model/config.h"
#include "model/layers/block.h"

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

// The block's knobs for this architecture.
PrenormBlock style(const ModelConfig&) {
  return PrenormBlock{.rope = false, .moe_renormalise = false, .residual_scale = 1.0f, .mamba1_bc_norms = true};
}

Status bind(Binder& b, const ModelConfig& c, Weights& w) {
  for (int il = 0; il < c.n_layer; ++il) TANDEM_TRY(bind_prenorm_block(b, c, il, w.layers[il], style(c)));
  return Status::ok();
}

Status layer(Fwd& f, int il) { return prenorm_block(f, il, style(f.cfg)); }

}  // namespace

const ArchOps& jamba_arch() {
  static const ArchOps ops{"jamba", configure, bind, layer};
  return ops;
}

}  // namespace tandem::model
