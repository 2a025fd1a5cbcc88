// tandem::Context accessors that read memory usage from the hybrid memory
// itself (cells / slots / snapshots in use, per-cell and per-state sizes), for
// `tandem serve` /metrics and the prefix cache's byte budget.
#include "memory/hybrid_impl.h"
#include "runtime/context_impl.h"

namespace tandem {

int Context::n_cells_used() const { return impl_->mem->n_cells_used(); }

int Context::n_slots_used() const { return impl_->mem->n_slots_used(); }

int Context::n_snapshots() const { return impl_->mem->impl().snaps.n_used(); }

size_t Context::cell_bytes() const {
  const memory::HybridMemory& m = *impl_->mem;
  return m.has_attention() ? m.impl().kv.cell_bytes() : 0;
}

size_t Context::state_bytes() const {
  const memory::HybridMemory& m = *impl_->mem;
  return m.has_recurrent() ? m.impl().rec.slot_bytes() : 0;
}

}  // namespace tandem
