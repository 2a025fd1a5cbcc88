#pragma once
// Binding helpers for the tensor groups the layer builders use (internal).
#include <string>

#include "core/status.h"
#include "model/model.h"
#include "model/weights.h"

namespace tandem::model {

// blk.N.attn_q/k/v/output.weight (+ optional .bias) for layer il.
Status bind_attention(Binder& b, const ModelConfig& c, int il, LayerWeights& lw);
// Mamba1 tensors; `bc_norms` requires the Jamba dt/B/C norm weights.
Status bind_mamba1(Binder& b, const ModelConfig& c, int il, LayerWeights& lw, bool bc_norms);
// Mamba2 tensors; ssm_norm required unless `norm_optional`.
Status bind_mamba2(Binder& b, const ModelConfig& c, int il, LayerWeights& lw, bool norm_optional);
// blk.N.ffn_gate/up/down.weight (+ optional biases) with n_ff = c.n_ff[il].
Status bind_swiglu(Binder& b, const ModelConfig& c, int il, LayerWeights& lw);
// blk.N.ffn_up/down.weight (+ optional biases), no gate.
Status bind_relu2(Binder& b, const ModelConfig& c, int il, LayerWeights& lw);
// Router + expert stacks (+ shared expert when c.n_ff_shexp > 0).
Status bind_moe(Binder& b, const ModelConfig& c, int il, LayerWeights& lw);
// A norm weight [n_embd] by full tensor name.
Status bind_norm(Binder& b, const ModelConfig& c, const std::string& name, Vec* out);

}  // namespace tandem::model
