#pragma once
// The recurrent store: n_slots state slots; for every recurrent layer a conv
// buffer [n_slots][conv_width-1][conv_channels] and an SSM buffer
// [n_slots][n_head][head_dim][d_state], both f32 (default) or bf16
// (--state-type bf16: half the bytes; HybridMemory::apply widens the slots of
// a micro-batch into f32 staging and end_ubatch() narrows them back, see
// hybrid_memory.h). "Raw" slot bytes are in the storage type; the float
// read/write helpers widen / narrow (round to nearest even) as needed. A live sequence owns one slot;
// sequences made by seq_cp share a slot (refcount) until one of them is
// written (copy-on-write in HybridMemory::apply).
//
// n_seq_max slots suffice to hold every sequence (each used slot has an owner,
// each sequence owns at most one slot); the store has n_seq_max more
// (n_spare) so that a decode step can write a sequence's new state into a free
// slot and leave the old one untouched — it is the rollback copy, at no cost
// (HybridMemory::apply, "double buffering").
//
// Journal: begin_journal() copies the (small) slot/sequence metadata. A slot
// that existed at the start is either left as it is while its sequences move
// to a fresh slot (hold_slot() keeps it from being reused until the journal
// ends) or, when no slot is free, written in place after backup_slot() kept a
// copy of its state. undo_journal() restores both exactly.
#include <cstdint>
#include <map>
#include <vector>

#include "core/aligned.h"
#include "memory/views.h"

namespace tandem::memory {

class RecurrentStore {
 public:
  struct Layer {
    int model_layer = 0;
    RecurrentSpec spec;
    size_t conv_elems = 0, ssm_elems = 0;  // floats per slot
    AlignedBuffer conv, ssm;
  };
  struct SeqState {
    int32_t slot = -1;     // -1: empty (fresh sequence or reset)
    int32_t pos_min = -1;  // first position the state has absorbed
    int32_t pos_max = -1;  // last position the state has absorbed
    bool operator==(const SeqState&) const = default;
  };

  RecurrentStore() = default;
  RecurrentStore(const std::vector<LayerSpec>& layers, int n_seq_max, bool bf16 = false, int n_spare = 0);
  // Slots of a store for n_seq_max sequences: one each plus as many spares.
  static int n_slots_for(int n_seq_max) { return 2 * n_seq_max; }

  bool empty() const { return layers_.empty(); }
  int n_slots() const { return static_cast<int>(refcount_.size()); }
  int n_layers() const { return static_cast<int>(layers_.size()); }
  Layer& layer(int i) { return layers_[i]; }
  const Layer& layer(int i) const { return layers_[i]; }
  int local_index(int model_layer) const;
  // Floats of one slot over all recurrent layers (conv then ssm, layer by layer).
  size_t slot_floats() const { return slot_floats_; }
  static size_t slot_floats_for(const std::vector<LayerSpec>& layers);
  // Storage: bf16 (2 bytes per element) or f32 (4).
  bool bf16() const { return bf16_; }
  size_t elem_bytes() const { return bf16_ ? 2 : 4; }
  size_t slot_bytes() const { return slot_floats_ * elem_bytes(); }
  static size_t slot_bytes_for(const std::vector<LayerSpec>& layers, bool bf16) {
    return slot_floats_for(layers) * (bf16 ? 2 : 4);
  }

  // f32 storage only: the slot's conv / SSM state in place.
  float* conv(int i, int slot) { return layers_[i].conv.as<float>() + size_t(slot) * layers_[i].conv_elems; }
  float* ssm(int i, int slot) { return layers_[i].ssm.as<float>() + size_t(slot) * layers_[i].ssm_elems; }
  // Any storage: the slot's bytes in the storage type.
  uint8_t* conv_raw(int i, int slot) { return layers_[i].conv.as<uint8_t>() + size_t(slot) * layers_[i].conv_elems * elem_bytes(); }
  uint8_t* ssm_raw(int i, int slot) { return layers_[i].ssm.as<uint8_t>() + size_t(slot) * layers_[i].ssm_elems * elem_bytes(); }
  const uint8_t* conv_raw(int i, int slot) const {
    return layers_[i].conv.as<uint8_t>() + size_t(slot) * layers_[i].conv_elems * elem_bytes();
  }
  const uint8_t* ssm_raw(int i, int slot) const {
    return layers_[i].ssm.as<uint8_t>() + size_t(slot) * layers_[i].ssm_elems * elem_bytes();
  }

  const SeqState& seq(int s) const { return seqs_[s]; }
  SeqState& seq_mut(int s) { return seqs_[s]; }
  int32_t refcount(int slot) const { return refcount_[slot]; }
  int n_slots_used() const;

  // Slot management (metadata only).
  int alloc_slot();                   // a slot with refcount 0 not held, refcount still 0; -1 if none
  void attach(int s, int slot);       // s must be empty
  void detach(int s);                 // s becomes empty (positions reset)
  // Moves sequences `seqs` to `slot`, keeping their positions.
  void move_seqs(const std::vector<int32_t>& seqs, int slot);
  void set_refcounts(std::vector<int32_t> rc) { refcount_ = std::move(rc); }
  void set_seqs(std::vector<SeqState> st) { seqs_ = std::move(st); }
  const std::vector<int32_t>& refcounts() const { return refcount_; }
  const std::vector<SeqState>& seqs() const { return seqs_; }

  // Slot data.
  void zero_slot(int slot);
  void copy_slot(int dst, int src);
  void read_slot(int slot, float* out) const;   // slot_floats(), widened from bf16 if needed
  void write_slot(int slot, const float* in);   // narrowed to bf16 (round to nearest even) if needed
  void read_slot_raw(int slot, uint8_t* out) const;  // slot_bytes(), storage type, exact
  void write_slot_raw(int slot, const uint8_t* in);

  void clear();

  void begin_journal();
  // Keep a copy of `slot` before its first in-place write in this journal
  // (no-op for slots that were free when the journal began, or already kept).
  void backup_slot(int slot);
  // Keep `slot` (whose sequences moved to another slot) from alloc_slot()
  // until the journal ends: undo_journal() re-attaches them to it.
  void hold_slot(int slot);
  // True if `slot` was free when the open journal began (writing it in place
  // needs no rollback copy).
  bool fresh_in_journal(int slot) const { return journal_open_ && saved_refcount_[slot] == 0; }
  void end_journal();
  void undo_journal();
  bool journaling() const { return journal_open_; }

 private:
  std::vector<Layer> layers_;
  std::vector<int> local_;
  size_t slot_floats_ = 0;
  bool bf16_ = false;
  std::vector<int32_t> refcount_;  // [n_slots]
  std::vector<SeqState> seqs_;     // [n_seq_max]

  bool journal_open_ = false;
  std::vector<int32_t> saved_refcount_;
  std::vector<SeqState> saved_seqs_;
  // Raw bytes of the slots written in place during the open journal:
  // backup_buf_[i] holds backup_slots_[i]. Buffers are reused across journals.
  std::vector<int> backup_slots_;
  std::vector<std::vector<uint8_t>> backup_buf_;
  std::vector<uint8_t> held_;  // [n_slots] 1: held by the open journal
};

}  // namespace tandem::memory
