#include "memory/recurrent_store.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "core/fp16.h"

namespace tandem::memory {

namespace {
size_t conv_elems(const RecurrentSpec& r) { return size_t(r.conv_width > 0 ? r.conv_width - 1 : 0) * r.conv_channels; }
size_t ssm_elems(const RecurrentSpec& r) { return size_t(r.n_head) * r.head_dim * r.d_state; }
}  // namespace

RecurrentStore::RecurrentStore(const std::vector<LayerSpec>& layers, int n_seq_max, bool bf16, int n_spare)
    : local_(layers.size(), -1), bf16_(bf16) {
  const int n_slots = n_seq_max + n_spare;
  for (size_t l = 0; l < layers.size(); ++l) {
    if (!has_recurrent(layers[l].kind)) continue;
    local_[l] = static_cast<int>(layers_.size());
    Layer L;
    L.model_layer = static_cast<int>(l);
    L.spec = layers[l].rec;
    L.conv_elems = conv_elems(L.spec);
    L.ssm_elems = ssm_elems(L.spec);
    L.conv.resize(L.conv_elems * elem_bytes() * n_slots);
    L.ssm.resize(L.ssm_elems * elem_bytes() * n_slots);
    slot_floats_ += L.conv_elems + L.ssm_elems;
    layers_.push_back(std::move(L));
  }
  if (!layers_.empty()) {
    refcount_.assign(n_slots, 0);
    held_.assign(n_slots, 0);
    seqs_.assign(n_seq_max, SeqState{});
  } else {
    seqs_.assign(n_seq_max, SeqState{});
  }
}

size_t RecurrentStore::slot_floats_for(const std::vector<LayerSpec>& layers) {
  size_t n = 0;
  for (const auto& l : layers)
    if (has_recurrent(l.kind)) n += conv_elems(l.rec) + ssm_elems(l.rec);
  return n;
}

int RecurrentStore::local_index(int model_layer) const {
  if (model_layer < 0 || model_layer >= static_cast<int>(local_.size())) return -1;
  return local_[model_layer];
}

int RecurrentStore::n_slots_used() const {
  int n = 0;
  for (int32_t r : refcount_) n += r > 0;
  return n;
}

void RecurrentStore::move_seqs(const std::vector<int32_t>& seqs, int slot) {
  for (int s : seqs) {
    const SeqState st = seq(s);
    detach(s);
    attach(s, slot);
    seq_mut(s).pos_min = st.pos_min;
    seq_mut(s).pos_max = st.pos_max;
  }
}

int RecurrentStore::alloc_slot() {
  for (int i = 0; i < n_slots(); ++i)
    if (refcount_[i] == 0 && !held_[i]) return i;
  return -1;
}

void RecurrentStore::attach(int s, int slot) {
  assert(seqs_[s].slot < 0);
  seqs_[s].slot = slot;
  ++refcount_[slot];
}

void RecurrentStore::detach(int s) {
  if (seqs_[s].slot >= 0) --refcount_[seqs_[s].slot];
  seqs_[s] = SeqState{};
}

namespace {
// bf16 <-> f32 over n elements; widening is exact, narrowing rounds to nearest even.
void widen(const uint8_t* src, float* dst, size_t n) {
  for (size_t k = 0; k < n; ++k) {
    uint16_t b;
    std::memcpy(&b, src + 2 * k, 2);
    dst[k] = bf16_to_f32(b);
  }
}
void narrow(const float* src, uint8_t* dst, size_t n) {
  for (size_t k = 0; k < n; ++k) {
    const uint16_t b = f32_to_bf16(src[k]);
    std::memcpy(dst + 2 * k, &b, 2);
  }
}
}  // namespace

void RecurrentStore::zero_slot(int slot) {
  const size_t e = elem_bytes();
  for (int i = 0; i < n_layers(); ++i) {
    if (layers_[i].conv_elems) std::memset(conv_raw(i, slot), 0, layers_[i].conv_elems * e);
    std::memset(ssm_raw(i, slot), 0, layers_[i].ssm_elems * e);
  }
}

void RecurrentStore::copy_slot(int dst, int src) {
  if (dst == src) return;
  const size_t e = elem_bytes();
  for (int i = 0; i < n_layers(); ++i) {
    if (layers_[i].conv_elems) std::memcpy(conv_raw(i, dst), conv_raw(i, src), layers_[i].conv_elems * e);
    std::memcpy(ssm_raw(i, dst), ssm_raw(i, src), layers_[i].ssm_elems * e);
  }
}

void RecurrentStore::read_slot(int slot, float* out) const {
  for (int i = 0; i < n_layers(); ++i) {
    const Layer& L = layers_[i];
    if (bf16_) {
      widen(conv_raw(i, slot), out, L.conv_elems);
      widen(ssm_raw(i, slot), out + L.conv_elems, L.ssm_elems);
    } else {
      if (L.conv_elems) std::memcpy(out, conv_raw(i, slot), L.conv_elems * sizeof(float));
      std::memcpy(out + L.conv_elems, ssm_raw(i, slot), L.ssm_elems * sizeof(float));
    }
    out += L.conv_elems + L.ssm_elems;
  }
}

void RecurrentStore::write_slot(int slot, const float* in) {
  for (int i = 0; i < n_layers(); ++i) {
    const Layer& L = layers_[i];
    if (bf16_) {
      narrow(in, conv_raw(i, slot), L.conv_elems);
      narrow(in + L.conv_elems, ssm_raw(i, slot), L.ssm_elems);
    } else {
      if (L.conv_elems) std::memcpy(conv_raw(i, slot), in, L.conv_elems * sizeof(float));
      std::memcpy(ssm_raw(i, slot), in + L.conv_elems, L.ssm_elems * sizeof(float));
    }
    in += L.conv_elems + L.ssm_elems;
  }
}

void RecurrentStore::read_slot_raw(int slot, uint8_t* out) const {
  const size_t e = elem_bytes();
  for (int i = 0; i < n_layers(); ++i) {
    const Layer& L = layers_[i];
    if (L.conv_elems) std::memcpy(out, conv_raw(i, slot), L.conv_elems * e);
    out += L.conv_elems * e;
    std::memcpy(out, ssm_raw(i, slot), L.ssm_elems * e);
    out += L.ssm_elems * e;
  }
}

void RecurrentStore::write_slot_raw(int slot, const uint8_t* in) {
  const size_t e = elem_bytes();
  for (int i = 0; i < n_layers(); ++i) {
    const Layer& L = layers_[i];
    if (L.conv_elems) std::memcpy(conv_raw(i, slot), in, L.conv_elems * e);
    in += L.conv_elems * e;
    std::memcpy(ssm_raw(i, slot), in, L.ssm_elems * e);
    in += L.ssm_elems * e;
  }
}

void RecurrentStore::clear() {
  assert(!journal_open_);
  for (auto& r : refcount_) r = 0;
  for (auto& s : seqs_) s = SeqState{};
}

void RecurrentStore::begin_journal() {
  assert(!journal_open_);
  journal_open_ = true;
  saved_refcount_ = refcount_;
  saved_seqs_ = seqs_;
  backup_slots_.clear();
}

void RecurrentStore::backup_slot(int slot) {
  if (!journal_open_) return;
  if (saved_refcount_[slot] == 0) return;  // was free: nothing to restore
  if (std::find(backup_slots_.begin(), backup_slots_.end(), slot) != backup_slots_.end()) return;
  // The buffers outlive the journal: a decode step then costs one copy per
  // slot, not an allocation and the page faults of touching fresh memory.
  const size_t i = backup_slots_.size();
  if (backup_buf_.size() <= i) backup_buf_.emplace_back(slot_bytes());
  backup_buf_[i].resize(slot_bytes());
  read_slot_raw(slot, backup_buf_[i].data());
  backup_slots_.push_back(slot);
}

void RecurrentStore::hold_slot(int slot) {
  if (journal_open_) held_[slot] = 1;
}

void RecurrentStore::end_journal() {
  journal_open_ = false;
  std::fill(held_.begin(), held_.end(), uint8_t{0});
  backup_slots_.clear();
  saved_refcount_.clear();
  saved_seqs_.clear();
}

void RecurrentStore::undo_journal() {
  for (size_t i = 0; i < backup_slots_.size(); ++i) write_slot_raw(backup_slots_[i], backup_buf_[i].data());
  refcount_ = saved_refcount_;
  seqs_ = saved_seqs_;
  end_journal();
}

}  // namespace tandem::memory
