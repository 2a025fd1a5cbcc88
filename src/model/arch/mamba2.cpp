// mamba2 (Mamba2 only): RMSNorm → Mamba2 mixer → residual. No FFN.
// Its `attention.head_count` holds the SSM head count: attention keys are ignored.
#include "model/arch/arch.h"
#include "model/arch/arch_common.h"

namespace tandem::model {

// configure / bind / layer: model/arch/arch_common.h.
const ArchOps& mamba2_arch() {
  using A = SsmOnlyArch</*kMamba2=*/true>;
  static const ArchOps ops{"mamba2", A::configure, A::bind, A::layer};
  return ops;
}

}  // namespace tandem::model
