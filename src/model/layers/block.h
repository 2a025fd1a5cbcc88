#pragma once
// The pre-norm "mixer, then FFN" block shared by llama, jamba and
// granitehybrid (internal to src/model):
//   h += s · mixer(RMSNorm(h) · attn_norm)     mixer per cfg.mixer[il]
//   h += s · ffn(RMSNorm(h) · ffn_norm)        ffn per cfg.ffn[il]
// The architectures differ only in the knobs below, so each arch file keeps
// its configure() and says which knobs it uses.
#include "core/status.h"
#include "model/layers/fwd.h"
#include "model/model.h"
#include "model/weights.h"

namespace tandem::model {

struct PrenormBlock {
  bool rope = true;             // attention layers apply RoPE (granitehybrid: rope.scaling.finetuned)
  bool moe_renormalise = false; // MoE top-k weights renormalised to sum 1 (Granite) or kept (Jamba, Mixtral-style llama)
  float residual_scale = 1.0f;  // Granite's residual_scale; 1 elsewhere
  bool mamba1_bc_norms = false; // Mamba1 layers carry Jamba's dt/B/C RMS norms
};

// Binds attn_norm, the mixer of cfg.mixer[il] (attention, Mamba1 or Mamba2 with
// a required ssm_norm), ffn_norm and the SwiGLU or MoE FFN of cfg.ffn[il].
Status bind_prenorm_block(Binder& b, const ModelConfig& c, int il, LayerWeights& lw, const PrenormBlock& s);
// Runs layer il on the residual stream f.h() [T][n_embd].
Status prenorm_block(Fwd& f, int il, const PrenormBlock& s);

}  // namespace tandem::model
