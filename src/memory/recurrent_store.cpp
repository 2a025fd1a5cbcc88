#include "memory/recurrent_store.h"

#include <cassert>
#include <cstring>

namespace tandem::memory {

namespace {
size_t conv_elems(const RecurrentSpec& r) { return size_t(r.conv_width > 0 ? r.conv_width - 1 : 0) * r.conv_channels; }
size_t ssm_elems(const RecurrentSpec& r) { return size_t(r.n_head) * r.head_dim * r.d_state; }
}  // namespace

RecurrentStore::RecurrentStore(const std::vector<LayerSpec>& layers, int n_seq_max)
    : local_(layers.size(), -1) {
  for (size_t l = 0; l < layers.size(); ++l) {
    if (!has_recurrent(layers[l].kind)) continue;
    local_[l] = static_cast<int>(layers_.size());
    Layer L;
    L.model_layer = static_cast<int>(l);
    L.spec = layers[l].rec;
    L.conv_elems = conv_elems(L.spec);
    L.ssm_elems = ssm_elems(L.spec);
    L.conv.resize(L.conv_elems * sizeof(float) * n_seq_max);
    L.ssm.resize(L.ssm_elems * sizeof(float) * n_seq_max);
    slot_floats_ += L.conv_elems + L.ssm_elems;
    layers_.push_back(std::move(L));
  }
  if (!layers_.empty()) {
    refcount_.assign(n_seq_max, 0);
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

int RecurrentStore::alloc_slot() {
  for (int i = 0; i < n_slots(); ++i)
    if (refcount_[i] == 0) return i;
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

void RecurrentStore::zero_slot(int slot) {
  for (int i = 0; i < n_layers(); ++i) {
    if (layers_[i].conv_elems) std::memset(conv(i, slot), 0, layers_[i].conv_elems * sizeof(float));
    std::memset(ssm(i, slot), 0, layers_[i].ssm_elems * sizeof(float));
  }
}

void RecurrentStore::copy_slot(int dst, int src) {
  if (dst == src) return;
  for (int i = 0; i < n_layers(); ++i) {
    if (layers_[i].conv_elems) std::memcpy(conv(i, dst), conv(i, src), layers_[i].conv_elems * sizeof(float));
    std::memcpy(ssm(i, dst), ssm(i, src), layers_[i].ssm_elems * sizeof(float));
  }
}

void RecurrentStore::read_slot(int slot, float* out) const {
  for (int i = 0; i < n_layers(); ++i) {
    const Layer& L = layers_[i];
    if (L.conv_elems) std::memcpy(out, L.conv.as<float>() + size_t(slot) * L.conv_elems, L.conv_elems * sizeof(float));
    out += L.conv_elems;
    std::memcpy(out, L.ssm.as<float>() + size_t(slot) * L.ssm_elems, L.ssm_elems * sizeof(float));
    out += L.ssm_elems;
  }
}

void RecurrentStore::write_slot(int slot, const float* in) {
  for (int i = 0; i < n_layers(); ++i) {
    if (layers_[i].conv_elems) std::memcpy(conv(i, slot), in, layers_[i].conv_elems * sizeof(float));
    in += layers_[i].conv_elems;
    std::memcpy(ssm(i, slot), in, layers_[i].ssm_elems * sizeof(float));
    in += layers_[i].ssm_elems;
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
  backups_.clear();
}

void RecurrentStore::backup_slot(int slot) {
  if (!journal_open_) return;
  if (saved_refcount_[slot] == 0) return;  // was free: nothing to restore
  if (backups_.count(slot)) return;
  std::vector<float> b(slot_floats_);
  read_slot(slot, b.data());
  backups_.emplace(slot, std::move(b));
}

void RecurrentStore::end_journal() {
  journal_open_ = false;
  backups_.clear();
  saved_refcount_.clear();
  saved_seqs_.clear();
}

void RecurrentStore::undo_journal() {
  for (auto& [slot, data] : backups_) write_slot(slot, data.data());
  refcount_ = saved_refcount_;
  seqs_ = saved_seqs_;
  end_journal();
}

}  // namespace tandem::memory
