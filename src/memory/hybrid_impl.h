#pragma once
// Internal state of HybridMemory, shared by its implementation files
// (hybrid_memory.cpp: create/decode/accounting, hybrid_seq_ops.cpp: sequence
// operations and snapshots, state_file.cpp: save/load, planner.cpp: plan).
#include <cstdint>
#include <set>
#include <vector>

#include "memory/hybrid_memory.h"
#include "memory/kv_store.h"
#include "memory/recurrent_store.h"
#include "memory/snapshots.h"

namespace tandem::memory {

// The LayerMemory handed to the forward pass for the micro-batch just applied.
class AppliedLayerMemory final : public LayerMemory {
 public:
  explicit AppliedLayerMemory(HybridMemory::Impl* m) : m_(m) {}
  KvView kv(int layer) override;
  StateView state(int layer) override;

 private:
  HybridMemory::Impl* m_;
};

struct HybridMemory::Impl {
  std::vector<LayerSpec> layers;
  MemoryOptions opts;
  KvStore kv;
  RecurrentStore rec;
  SnapshotPool snaps;

  bool has_attn() const { return !kv.empty(); }
  bool has_rec() const { return !rec.empty(); }

  // Any mutation bumps the generation; a plan made on another generation is stale.
  uint64_t generation = 1;
  mutable uint64_t next_plan_id = 1;

  // Open decode transaction (0 = none).
  uint64_t tx_plan = 0;
  int tx_next = 0;
  std::set<int32_t> kv_backed_up;                       // cells rewritten in place this tx
  std::vector<std::pair<int32_t, std::vector<uint8_t>>> kv_backups;

  // Scratch of the micro-batch just applied.
  std::vector<int32_t> dst_cells;                // [n_tokens]
  std::vector<float> mask;                       // [n_tokens][n_kv]
  int n_kv = 0;
  int n_streams = 0;
  std::vector<std::vector<float*>> conv_ptrs;    // [rec layer][stream]
  std::vector<std::vector<float*>> ssm_ptrs;
  // bf16 state: the micro-batch's slots widened to f32, [stream][slot_floats]
  // (layout of RecurrentStore::read_slot); narrowed back by end_ubatch().
  std::vector<float> staging;
  std::vector<int32_t> staged_slots;  // [stream] slot the staging row belongs to
  bool staging_pending = false;
  void flush_staging();  // also completes the pending layer copies
  // f32 streams that moved to another slot this micro-batch (double buffering
  // or copy on write): state() hands the forward pass the old SSM state as the
  // scan's source (StateView::ssm_src), so the state crosses memory once, read
  // from the old slot and written to the new one. The small conv state is
  // copied right before the layer runs; layers the forward pass never asked
  // for are copied whole when the micro-batch ends (finish_copies).
  std::vector<int32_t> copy_src, copy_dst;    // [stream] slots, -1: in place
  std::vector<uint8_t> copied;                // [rec layer][stream] 1: handed out, done or not needed
  std::vector<std::vector<const float*>> ssm_src_ptrs;  // [rec layer][stream]: the scan's source
  void copy_layer_states(int li, bool with_ssm);
  void finish_copies();
  AppliedLayerMemory layer_memory{this};

  Status check_idle(const char* op) const;
  Status check_seq(int s, const char* op) const;
  void bump() { ++generation; }
  void undo_tx();

  // Sequence helpers shared by seq ops and state files.
  void drop_seq(int s);  // remove s from both stores (no snapshot validity change)
  int32_t next_pos(int s) const;
};

// planner.cpp
Result<Plan> build_plan(const HybridMemory::Impl& m, const Batch& batch);

// geometry fingerprint of the layer specs + kv type (state files).
uint64_t geometry_hash(const std::vector<LayerSpec>& layers, DType kv_type);

}  // namespace tandem::memory
