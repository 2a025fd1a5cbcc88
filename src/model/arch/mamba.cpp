// mamba (Mamba1 only): RMSNorm → Mamba1 mixer → residual. No FFN.
#include "model/arch/arch.h"
#include "model/arch/arch_common.h"

namespace tandem::model {

// configure / bind / layer: model/arch/arch_common.h.
const ArchOps& mamba_arch() {
  using A = SsmOnlyArch</*kMamba2=*/false>;
  static const ArchOps ops{"mamba", A::configure, A::bind, A::layer};
  return ops;
}

}  // namespace tandem::model
