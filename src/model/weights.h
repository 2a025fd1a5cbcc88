#pragma once
// Weight views bound by tensor name (internal to src/model).
//
// Matrices are kernels::Matrix views straight into the GGUF mmap (any type the
// kernels can dequantize). Small per-channel parameters (norm weights, biases,
// conv kernels, A, D) are used as f32 arrays: also views into the mmap when the
// file stores them as F32, otherwise converted once at load into owned storage.
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "model/model.h"

namespace tandem::model {

// An f32 parameter array (nullptr when an optional tensor is absent).
struct Vec {
  const float* data = nullptr;
  int64_t n = 0;
  explicit operator bool() const { return data != nullptr; }
};

inline bool present(const kernels::Matrix& m) { return m.data != nullptr; }

struct LayerWeights {
  Vec attn_norm;                        // [n_embd]
  // attention
  kernels::Matrix wq, wk, wv, wo;       // [n_head*hd_k][n_embd], [n_kv*hd_k][n_embd], [n_kv*hd_v][n_embd], [n_embd][n_head*hd_v]
  Vec bq, bk, bv, bo;                   // optional biases
  // state space (Mamba1 / Mamba2)
  kernels::Matrix ssm_in;               // Mamba1: [2*d_inner][n_embd]; Mamba2: [2*d_inner + 2GN + H][n_embd]
  Vec ssm_conv1d;                       // [channels][d_conv]
  Vec ssm_conv1d_b;                     // [channels] (optional)
  kernels::Matrix ssm_x;                // Mamba1: [dt_rank + 2N][d_inner]
  kernels::Matrix ssm_dt;               // Mamba1: [d_inner][dt_rank]
  Vec ssm_dt_b;                         // Mamba1: [d_inner]; Mamba2: [H]
  Vec ssm_a;                            // Mamba1: [d_inner][N]; Mamba2: [H]
  Vec ssm_d;                            // Mamba1: [d_inner]; Mamba2: [H]
  Vec ssm_norm;                         // Mamba2: [G][d_inner/G] (optional for falcon-h1)
  Vec ssm_dt_norm, ssm_b_norm, ssm_c_norm;  // Jamba: [dt_rank], [N], [N]
  kernels::Matrix ssm_out;              // [n_embd][d_inner]
  // feed-forward
  Vec ffn_norm;                         // [n_embd]
  kernels::Matrix ffn_gate, ffn_up, ffn_down;  // [n_ff][n_embd] x2, [n_embd][n_ff]
  Vec ffn_gate_b, ffn_up_b, ffn_down_b;        // optional biases
  // mixture of experts
  kernels::Matrix ffn_gate_inp;                            // router [n_expert][n_embd]
  std::vector<kernels::Matrix> gate_exps, up_exps, down_exps;  // per expert, as dense FFN
  kernels::Matrix ffn_gate_shexp, ffn_up_shexp, ffn_down_shexp;  // shared expert (optional)
};

struct Weights {
  kernels::Matrix token_embd;   // [n_vocab][n_embd]
  Vec output_norm;              // [n_embd]
  kernels::Matrix output;       // [n_vocab][n_embd] (token_embd when tied)
  bool output_tied = false;
  std::vector<LayerWeights> layers;
  std::deque<std::vector<float>> owned;  // converted small parameters (stable addresses)
};

// Binds tensors of one file by name with shape and type checks. Shapes are in
// ggml order (ne0 first); trailing 1-sized dimensions are ignored on both
// sides, as the reference loader does.
class Binder {
 public:
  Binder(const gguf::File& f, Weights& w, bool check_types) : f_(f), w_(w), check_types_(check_types) {}

  bool has(std::string_view name) const { return f_.find_tensor(name) != nullptr; }

  // A 2-D weight matrix {cols, rows}. Absent + !required -> empty Matrix.
  Status matrix(const std::string& name, int64_t cols, int64_t rows, bool required, kernels::Matrix* out);
  // A stack of n_expert matrices {cols, rows, n_expert}, one Matrix per expert.
  Status experts(const std::string& name, int64_t cols, int64_t rows, int64_t n_expert, bool required,
                 std::vector<kernels::Matrix>* out);
  // An f32 parameter array with the given ggml shape.
  Status vec(const std::string& name, std::vector<int64_t> shape, bool required, Vec* out);

 private:
  Result<const gguf::TensorInfo*> find(const std::string& name, const std::vector<int64_t>& shape,
                                       bool required);
  const gguf::File& f_;
  Weights& w_;
  bool check_types_;
};

// "blk.<il>.<suffix>"
inline std::string blk(int il, std::string_view suffix) {
  return "blk." + std::to_string(il) + "." + std::string(suffix);
}

}  // namespace tandem::model
