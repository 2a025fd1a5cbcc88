#include "memory/kv_store.h"

#include <cstring>
#include <limits>

#include "core/fp16.h"
#include "kernels/kernels.h"

namespace tandem::memory {

namespace {
size_t elem_bytes(DType t) { return t == DType::F32 ? 4 : 2; }
}  // namespace

KvStore::KvStore(const std::vector<LayerSpec>& layers, int n_ctx, int n_seq_max, DType type)
    : type_(type), local_(layers.size(), -1) {
  for (size_t l = 0; l < layers.size(); ++l) {
    if (!has_attention(layers[l].kind)) continue;
    local_[l] = static_cast<int>(layers_.size());
    Layer L;
    L.model_layer = static_cast<int>(l);
    L.spec = layers[l].attn;
    L.k_row = size_t(L.spec.n_kv_heads) * L.spec.head_dim_k * elem_bytes(type);
    L.v_row = size_t(L.spec.n_kv_heads) * L.spec.head_dim_v * elem_bytes(type);
    L.k.resize(L.k_row * n_ctx);
    L.v.resize(L.v_row * n_ctx);
    layers_.push_back(std::move(L));
  }
  if (!layers_.empty()) cells_ = CellTable(n_ctx, n_seq_max);
}

int KvStore::local_index(int model_layer) const {
  if (model_layer < 0 || model_layer >= static_cast<int>(local_.size())) return -1;
  return local_[model_layer];
}

size_t KvStore::cell_bytes() const {
  size_t b = 0;
  for (const auto& L : layers_) b += L.k_row + L.v_row;
  return b;
}

size_t KvStore::cell_bytes_for(const std::vector<LayerSpec>& layers, DType type) {
  size_t b = 0;
  for (const auto& l : layers)
    if (has_attention(l.kind))
      b += size_t(l.attn.n_kv_heads) * (l.attn.head_dim_k + l.attn.head_dim_v) * elem_bytes(type);
  return b;
}

void KvStore::copy_cell(int dst, int src) {
  for (int i = 0; i < n_layers(); ++i) {
    std::memcpy(k_row(i, dst), k_row(i, src), layers_[i].k_row);
    std::memcpy(v_row(i, dst), v_row(i, src), layers_[i].v_row);
  }
}

void KvStore::read_cell(int c, uint8_t* out) const {
  for (int i = 0; i < n_layers(); ++i) {
    std::memcpy(out, k_row(i, c), layers_[i].k_row);
    out += layers_[i].k_row;
    std::memcpy(out, v_row(i, c), layers_[i].v_row);
    out += layers_[i].v_row;
  }
}

void KvStore::write_cell(int c, const uint8_t* in) {
  for (int i = 0; i < n_layers(); ++i) {
    std::memcpy(k_row(i, c), in, layers_[i].k_row);
    in += layers_[i].k_row;
    std::memcpy(v_row(i, c), in, layers_[i].v_row);
    in += layers_[i].v_row;
  }
}

bool KvStore::has_rope() const {
  for (const auto& L : layers_)
    if (L.spec.rope) return true;
  return false;
}

void KvStore::shift_k(int c, float delta) {
  std::vector<float> tmp;
  for (int i = 0; i < n_layers(); ++i) {
    const Layer& L = layers_[i];
    if (!L.spec.rope) continue;  // NoPE: keys carry no position
    const int n = L.spec.n_kv_heads * L.spec.head_dim_k;
    tmp.resize(n);
    uint8_t* row = k_row(i, c);
    if (type_ == DType::F32) {
      std::memcpy(tmp.data(), row, size_t(n) * 4);
    } else {
      const uint16_t* h = reinterpret_cast<const uint16_t*>(row);
      for (int j = 0; j < n; ++j) tmp[j] = fp16_to_f32(h[j]);
    }
    kernels::rope(tmp.data(), L.spec.n_kv_heads, L.spec.head_dim_k, delta, *L.spec.rope);
    if (type_ == DType::F32) {
      std::memcpy(row, tmp.data(), size_t(n) * 4);
    } else {
      uint16_t* h = reinterpret_cast<uint16_t*>(row);
      for (int j = 0; j < n; ++j) h[j] = f32_to_fp16(tmp[j]);
    }
  }
}

void KvStore::build_mask(const std::vector<SeqSet>& row_seqs, const std::vector<int32_t>& pos,
                         int n_kv, float* out) const {
  const float kHidden = -std::numeric_limits<float>::infinity();
  for (size_t r = 0; r < row_seqs.size(); ++r) {
    const SeqSet& need = row_seqs[r];
    float* m = out + r * size_t(n_kv);
    for (int c = 0; c < n_kv; ++c) {
      const Cell& cell = cells_[c];
      const bool visible = cell.pos >= 0 && cell.pos <= pos[r] && (cell.seq & need) == need;
      m[c] = visible ? 0.0f : kHidden;
    }
  }
}

}  // namespace tandem::memory
