#pragma once
// A toy "model" and an independent reference for testing the hybrid memory
// without the real kernels.
//
// Toy forward pass over one micro-batch (all values are integers mod kMod, so
// F32 and F16 storage are exact):
//   x = token + 1
//   per layer l:
//     attention: write K = [x, l, 0...], V = [x, 0...] into dst_cells; then
//                a = sum of V[0] over the cells the mask shows, n = their count;
//                y_att = (7a + 13n) mod kMod
//     recurrent: per stream, tokens in order: conv window (channel 0) shifts in x,
//                ssm[0] = (31 ssm[0] + x) mod kMod, ssm[1] += 1;
//                y_rec = (ssm[0] + 3 conv[0][0]) mod kMod
//     x = (5x + y_att + y_rec) mod kMod      (only the parts the layer has)
//   output row value = final x.
// The reference keeps each sequence's full history (token, position, the V
// value each attention layer wrote, the recurrent state after the token) and
// computes the same function token by token, with no cells and no slots.
#include <cstdint>
#include <map>
#include <vector>

#include "memory/hybrid_impl.h"
#include "memory/hybrid_memory.h"

namespace tandem::memory::toy {

inline constexpr int kMod = 2039;  // prime < 2048: exact in F16

struct RecState {
  std::vector<float> ssm0, ssm1;             // [rec layer]
  std::vector<std::vector<float>> window;    // [rec layer][conv_width-1]
  bool operator==(const RecState&) const = default;
};

struct Entry {
  int32_t tok = 0, pos = 0;
  std::vector<float> v;  // [attention layer] V[0] written
  RecState after;        // recurrent state after this token
  float out = 0;         // final x
};

class ToyModel {
 public:
  explicit ToyModel(std::vector<LayerSpec> specs) : specs_(std::move(specs)) {}
  // out: [n_outputs] final x of output rows, indexed by out_index.
  void forward(const UBatch& ub, LayerMemory& mem, float* out) const;
  const std::vector<LayerSpec>& specs() const { return specs_; }

 private:
  std::vector<LayerSpec> specs_;
};

// Per-sequence reference memory.
class Reference {
 public:
  Reference(std::vector<LayerSpec> specs, int n_seq_max);
  // Process one batch row shared by `seqs` (all with identical histories).
  float decode_row(const std::vector<int32_t>& seqs, int32_t tok, int32_t pos);
  // Expected slot floats of the recurrent state of s (layout of RecurrentStore::read_slot).
  std::vector<float> expected_slot(const RecState& st) const;
  RecState empty_state() const;
  std::vector<Entry>& hist(int s) { return hist_[s]; }
  const std::vector<Entry>& hist(int s) const { return hist_[s]; }
  int n_attn() const { return n_attn_; }
  int n_rec() const { return n_rec_; }
  bool has_rec() const { return n_rec_ > 0; }
  int32_t next_pos(int s) const { return hist_[s].empty() ? 0 : hist_[s].back().pos + 1; }

 private:
  std::vector<LayerSpec> specs_;
  int n_attn_ = 0, n_rec_ = 0;
  std::vector<std::vector<Entry>> hist_;
};

// Drive one decode call through plan/apply/forward/commit. fail_at >= 0
// injects a compute failure after the forward pass of that micro-batch.
Status decode(HybridMemory& mem, const ToyModel& model, const Batch& b, std::vector<float>& out,
              int fail_at = -1, int* n_ubatches = nullptr);

// Compare memory contents of every sequence against the reference.
// Returns an empty string when equal, else a description of the first difference.
std::string compare(const HybridMemory& mem, const Reference& ref);

// Simple layer spec helpers.
LayerSpec attn_layer(int n_kv_heads = 2, int head_dim = 4);
LayerSpec rec_layer(int conv_channels = 3, int conv_width = 4, int n_head = 2, int head_dim = 2, int d_state = 3);
LayerSpec both_layer();

}  // namespace tandem::memory::toy
