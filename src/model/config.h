#pragma once
// Reading ModelConfig from GGUF metadata (internal to src/model).
#include <string>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"
#include "model/model.h"

namespace tandem::model {

// Reads every common `<arch>.*` key into c (c.arch must be set). Per-layer
// keys may be scalars or arrays. Errors name the file and key.
Status read_common_config(const gguf::File& f, ModelConfig& c);
// A scalar-or-array integer key expanded to one value per layer.
Result<std::vector<int>> per_layer_ints(const gguf::File& f, const std::string& key, int n_layer, int def);
// Checks the SSM keys a Mamba1 (mamba2=false) or Mamba2 mixer needs.
Status require_ssm(const gguf::File& f, const ModelConfig& c, bool mamba2);
// Checks the head counts / sizes of attention layer il.
Status require_attention(const gguf::File& f, const ModelConfig& c, int il);

}  // namespace tandem::model
