#pragma once
// What one architecture provides (internal to src/model). Each supported GGUF
// architecture lives in its own file src/model/arch/<arch>.cpp and exposes one
// `const ArchOps& <name>_arch()`; registry.cpp lists them.
#include <string_view>

#include "core/status.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "model/weights.h"

namespace tandem::model {

struct Fwd;  // model/layers/fwd.h

struct ArchOps {
  const char* name;  // general.architecture
  // Fills the arch-specific part of the config after the common keys are read:
  // per-layer mixer/ffn kinds, RoPE on/off and style, required keys.
  Status (*configure)(const gguf::File& f, ModelConfig& cfg);
  // Binds the weights of every layer (token_embd / output are bound by the caller).
  Status (*bind)(Binder& b, const ModelConfig& cfg, Weights& w);
  // Runs layer `il` on the residual stream held in the Fwd scratch.
  Status (*layer)(Fwd& f, int il);
};

const ArchOps* find_arch(std::string_view name);

const ArchOps& llama_arch();
const ArchOps& mamba_arch();
const ArchOps& mamba2_arch();
const ArchOps& granitehybrid_arch();
const ArchOps& jamba_arch();
const ArchOps& falcon_h1_arch();
const ArchOps& nemotron_h_arch();

}  // namespace tandem::model
