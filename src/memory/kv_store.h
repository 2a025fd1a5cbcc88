#pragma once
// The attention store: n_ctx cells (metadata in CellTable) and, for every
// attention layer, a K buffer [n_ctx][n_kv_heads][head_dim_k] and a V buffer
// [n_ctx][n_kv_heads][head_dim_v] in F16 or F32. One cell holds one token
// position of every attention layer.
#include <cstdint>
#include <vector>

#include "core/aligned.h"
#include "memory/cells.h"
#include "memory/views.h"

namespace tandem::memory {

class KvStore {
 public:
  struct Layer {
    int model_layer = 0;
    AttentionSpec spec;
    size_t k_row = 0, v_row = 0;  // bytes per cell
    AlignedBuffer k, v;           // [n_ctx][k_row], [n_ctx][v_row]
  };

  KvStore() = default;
  // Only layers with has_attention(kind) get buffers. n_ctx cells.
  KvStore(const std::vector<LayerSpec>& layers, int n_ctx, int n_seq_max, DType type);

  bool empty() const { return layers_.empty(); }
  DType type() const { return type_; }
  int n_ctx() const { return cells_.size(); }
  CellTable& cells() { return cells_; }
  const CellTable& cells() const { return cells_; }
  int n_layers() const { return static_cast<int>(layers_.size()); }
  Layer& layer(int i) { return layers_[i]; }
  const Layer& layer(int i) const { return layers_[i]; }
  // index into layers() of model layer l, -1 if that layer has no attention.
  int local_index(int model_layer) const;
  // K+V bytes of one cell over all attention layers.
  size_t cell_bytes() const;
  static size_t cell_bytes_for(const std::vector<LayerSpec>& layers, DType type);

  uint8_t* k_row(int i, int c) { return layers_[i].k.as<uint8_t>() + size_t(c) * layers_[i].k_row; }
  uint8_t* v_row(int i, int c) { return layers_[i].v.as<uint8_t>() + size_t(c) * layers_[i].v_row; }
  const uint8_t* k_row(int i, int c) const { return layers_[i].k.as<uint8_t>() + size_t(c) * layers_[i].k_row; }
  const uint8_t* v_row(int i, int c) const { return layers_[i].v.as<uint8_t>() + size_t(c) * layers_[i].v_row; }

  // Copy the K/V rows of every layer from cell src to cell dst.
  void copy_cell(int dst, int src);
  // Copy cell c's K/V rows (all layers) into out (cell_bytes()) / back.
  void read_cell(int c, uint8_t* out) const;
  void write_cell(int c, const uint8_t* in);
  // Re-rotate the K of cell c in every RoPE layer by `delta` positions: a key
  // rotated at p becomes the key rotated at p + delta (rotations compose:
  // angle(p)·freq_scale + angle(delta)·freq_scale = angle(p+delta)·freq_scale).
  // NoPE layers are untouched.
  void shift_k(int c, float delta);
  bool has_rope() const;

  // Mask for one micro-batch: row i (sequence set row_seqs[i], position pos[i])
  // sees cell c < n_kv iff c holds every sequence of the row and c.pos <= pos.
  // out: [n_rows][n_kv], 0 visible / -inf hidden.
  void build_mask(const std::vector<SeqSet>& row_seqs, const std::vector<int32_t>& pos, int n_kv,
                  float* out) const;

  void clear() { cells_.clear(); }

 private:
  DType type_ = DType::F16;
  CellTable cells_;
  std::vector<Layer> layers_;
  std::vector<int> local_;  // model layer -> layers_ index or -1
};

}  // namespace tandem::memory
