#pragma once
// A minimal test-only LayerMemory: KV cells appended in order (each cell
// remembers its sequence and position; masks are causal within a sequence)
// and one recurrent state per sequence id, zeroed at start. Enough to drive the
// Runner without the real hybrid memory.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/aligned.h"
#include "memory/views.h"

namespace tandem::testing {

class TestMemory : public memory::LayerMemory {
 public:
  TestMemory(const std::vector<memory::LayerSpec>& specs, int n_cells, int n_seq, DType kv_type)
      : specs_(specs), n_cells_(n_cells), kv_type_(kv_type) {
    const size_t esz = kv_type == DType::F32 ? 4 : 2;
    layers_.resize(specs.size());
    for (size_t il = 0; il < specs.size(); ++il) {
      const memory::LayerSpec& s = specs[il];
      Layer& L = layers_[il];
      if (memory::has_attention(s.kind)) {
        L.k_row = esz * s.attn.n_kv_heads * s.attn.head_dim_k;
        L.v_row = esz * s.attn.n_kv_heads * s.attn.head_dim_v;
        L.k.resize(L.k_row * n_cells);
        L.v.resize(L.v_row * n_cells);
      }
      if (memory::has_recurrent(s.kind)) {
        const size_t conv = size_t(s.rec.conv_width - 1) * s.rec.conv_channels;
        const size_t ssm = size_t(s.rec.n_head) * s.rec.head_dim * s.rec.d_state;
        for (int q = 0; q < n_seq; ++q) {
          L.conv.emplace_back(conv * sizeof(float));
          L.ssm.emplace_back(ssm * sizeof(float));
        }
      }
    }
  }

  // Places the micro-batch: row i belongs to sequence row_seq[i] at ub.pos[i].
  // Returns false when the cells run out.
  bool prepare(const memory::UBatch& ub, const std::vector<int>& row_seq) {
    const int T = ub.n_tokens;
    if (n_used_ + T > n_cells_) return false;
    dst_.resize(T);
    for (int i = 0; i < T; ++i) {
      dst_[i] = n_used_ + i;
      cell_seq_.push_back(row_seq[i]);
      cell_pos_.push_back(ub.pos[i]);
    }
    n_used_ += T;
    mask_.assign(size_t(T) * n_used_, -std::numeric_limits<float>::infinity());
    for (int i = 0; i < T; ++i) {
      for (int c = 0; c < n_used_; ++c) {
        if (cell_seq_[c] == row_seq[i] && cell_pos_[c] <= ub.pos[i]) mask_[size_t(i) * n_used_ + c] = 0.0f;
      }
    }
    stream_seq_.clear();
    for (int s = 0; s < ub.n_seqs; ++s) stream_seq_.push_back(row_seq[s * ub.n_seq_tokens]);
    return true;
  }

  memory::KvView kv(int il) override {
    Layer& L = layers_[il];
    memory::KvView v;
    v.type = kv_type_;
    v.k = L.k.data();
    v.v = L.v.data();
    v.k_row_bytes = L.k_row;
    v.v_row_bytes = L.v_row;
    v.dst_cells = dst_.data();
    v.n_kv = n_used_;
    v.mask = mask_.data();
    return v;
  }

  memory::StateView state(int il) override {
    Layer& L = layers_[il];
    L.conv_ptrs.clear();
    L.ssm_ptrs.clear();
    for (int q : stream_seq_) {
      L.conv_ptrs.push_back(L.conv[q].as<float>());
      L.ssm_ptrs.push_back(L.ssm[q].as<float>());
    }
    memory::StateView v;
    v.n_seqs = static_cast<int>(stream_seq_.size());
    v.conv = L.conv_ptrs.data();
    v.ssm = L.ssm_ptrs.data();
    return v;
  }

 private:
  struct Layer {
    size_t k_row = 0, v_row = 0;
    std::vector<uint8_t> k, v;
    std::vector<AlignedBuffer> conv, ssm;
    std::vector<float*> conv_ptrs, ssm_ptrs;
  };
  std::vector<memory::LayerSpec> specs_;
  int n_cells_;
  DType kv_type_;
  std::vector<Layer> layers_;
  int n_used_ = 0;
  std::vector<int> cell_seq_;
  std::vector<float> cell_pos_;
  std::vector<int32_t> dst_;
  std::vector<float> mask_;
  std::vector<int> stream_seq_;
};

}  // namespace tandem::testing
