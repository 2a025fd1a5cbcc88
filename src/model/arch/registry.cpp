// The table of supported architectures (one entry per src/model/arch/<arch>.cpp).
#include "model/arch/arch.h"

namespace tandem::model {

const ArchOps* find_arch(std::string_view name) {
  const ArchOps* all[] = {&llama_arch(),  &mamba_arch(),     &mamba2_arch(),    &granitehybrid_arch(),
                          &jamba_arch(),  &falcon_h1_arch(), &nemotron_h_arch()};
  for (const ArchOps* a : all) {
    if (name == a->name) return a;
  }
  return nullptr;
}

}  // namespace tandem::model
