#pragma once
// The contract between the hybrid memory and the model's forward pass.
// The model declares per-layer memory specs; for every micro-batch the memory
// hands out typed views (KV view for attention layers, state view for recurrent
// layers). No architecture names here, no downcasts anywhere.
#include <cstdint>
#include <optional>
#include <vector>

#include "core/dtype.h"
#include "kernels/kernels.h"

namespace tandem::memory {

enum class LayerKind : uint8_t { kNone, kAttention, kRecurrent, kBoth };

struct AttentionSpec {
  int n_kv_heads = 0;
  int head_dim_k = 0;
  int head_dim_v = 0;
  // Set for RoPE layers: seq_add/seq_div re-rotate cached K with it. Empty for NoPE.
  std::optional<kernels::RopeParams> rope;
};

struct RecurrentSpec {
  int conv_channels = 0;  // Mamba2: d_inner + 2*n_group*d_state; Mamba1: d_inner
  int conv_width = 0;     // the conv state keeps conv_width - 1 inputs
  int n_head = 0;         // SSM state is [n_head][head_dim][d_state];
  int head_dim = 0;       //   Mamba1: n_head = d_inner, head_dim = 1
  int d_state = 0;
};

struct LayerSpec {
  LayerKind kind = LayerKind::kNone;
  AttentionSpec attn;     // meaningful for kAttention / kBoth
  RecurrentSpec rec;      // meaningful for kRecurrent / kBoth
};

inline bool has_attention(LayerKind k) { return k == LayerKind::kAttention || k == LayerKind::kBoth; }
inline bool has_recurrent(LayerKind k) { return k == LayerKind::kRecurrent || k == LayerKind::kBoth; }

// One micro-batch as the forward pass sees it. For models with recurrent
// layers it is an *equal split*: n_seqs streams of n_seq_tokens tokens each,
// sequence-major (token t of stream s is row s*n_seq_tokens + t), and stream s
// uses recurrent state views()[s]. For attention-only models n_seqs == 1 and
// n_seq_tokens == n_tokens (rows in any order; masks carry the structure).
struct UBatch {
  int n_tokens = 0;
  int n_seqs = 1;
  int n_seq_tokens = 0;
  std::vector<int32_t> tokens;     // [n_tokens]
  std::vector<float> pos;          // [n_tokens] (float: seq_div can make fractions)
  std::vector<int32_t> out_index;  // [n_tokens]: row of the caller's output, or -1
};

// One attention layer's cache for the micro-batch being applied.
struct KvView {
  DType type = DType::F16;  // F16 or F32
  void* k = nullptr;        // cell c at k + c*k_row_bytes: [n_kv_heads][head_dim_k]
  void* v = nullptr;        // cell c at v + c*v_row_bytes: [n_kv_heads][head_dim_v]
  size_t k_row_bytes = 0, v_row_bytes = 0;
  const int32_t* dst_cells = nullptr;  // [n_tokens]: cell that receives token i's K/V
  int n_kv = 0;                        // attend over cells [0, n_kv)
  const float* mask = nullptr;         // [n_tokens][n_kv]: 0 visible, -inf hidden
};

// One recurrent layer's states for the micro-batch being applied: one slot per
// stream of the micro-batch, already zeroed for streams that start fresh.
// The conv state is updated in place. The SSM state is read from ssm_src and
// written to ssm: the two are equal for a state updated in place and differ
// for a double-buffered one (the old state stays untouched for a rollback), so
// the scan must read each source value before it writes the destination and
// must write every destination value.
struct StateView {
  int n_seqs = 0;
  float* const* conv = nullptr;       // [n_seqs] -> [conv_width-1][conv_channels]
  float* const* ssm = nullptr;        // [n_seqs] -> [n_head][head_dim][d_state]
  const float* const* ssm_src = nullptr;  // [n_seqs] -> the state before this micro-batch
};

// What the forward pass receives from the memory for the current micro-batch.
class LayerMemory {
 public:
  virtual ~LayerMemory() = default;
  virtual KvView kv(int layer) = 0;        // layer kind must have attention
  virtual StateView state(int layer) = 0;  // layer kind must have recurrent state
};

}  // namespace tandem::memory
