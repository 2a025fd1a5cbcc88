#pragma once
// The kernel API the model and memory layers program against.
//
// Conventions (all tensors row-major, innermost index last):
//  * A weight matrix W has `rows` output features, each a row of `cols` input
//    features stored in GGUF type `type` (ggml: ne0 = cols, ne1 = rows).
//  * Activations are f32, one row per token: x[t][feature].
//  * Every function dispatches once at entry to the active CPU path
//    (cpu.h); each SIMD path has a scalar twin reachable with TANDEM_CPU=scalar.
//  * Functions that take a ThreadPool split work by static partitioning; the
//    result does not depend on the thread count.
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace tandem::kernels {

class ThreadPool;

// ---------------------------------------------------------------- quant formats
// Dequantize n elements (a multiple of the block size) of type t.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
// Quantize n f32 elements into type t (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
// Q5_1, Q4_K, Q5_K, Q6_K, Q8_K). Returns false for a type we cannot write.
bool quantize_row(DType t, const float* src, void* dst, int64_t n);
bool can_dequantize(DType t);
bool can_quantize(DType t);

// ---------------------------------------------------------------- matmul
struct Matrix {
  DType type = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0;        // output features
  int64_t cols = 0;        // input features (multiple of the type's block size)
  size_t row_stride = 0;   // bytes between rows (row_bytes(type, cols) when packed)
};

// y[c][r] = sum_k W[r][k] * x[c][k] for c < n_cols.
// x: [n_cols][w.cols] f32, y: [n_cols][w.rows] f32.
void matmul(const Matrix& w, const float* x, int n_cols, float* y, ThreadPool& pool);

// Embedding lookup: out[0..cols) = dequantized row `id` of w.
void get_row(const Matrix& w, int64_t id, float* out);

// ---------------------------------------------------------------- layer ops
// y = x / sqrt(mean(x^2) + eps) * w   (w may be null: no weight). x may alias y.
void rms_norm(const float* x, const float* w, float* y, int n, float eps);
// RMS norm over each consecutive group of `group` channels (n % group == 0).
void group_rms_norm(const float* x, const float* w, float* y, int n, int group, float eps);

enum class RopeStyle { kNormal, kNeox };  // kNormal: adjacent pairs (2i, 2i+1); kNeox: (i, i + n_rot/2)
struct RopeParams {
  RopeStyle style = RopeStyle::kNormal;
  int n_rot = 0;             // rotated dims per head (<= head_dim); the rest pass through
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;   // position multiplier (linear scaling)
};
// Rotate x: [n_heads][head_dim] in place for position `pos` (may be fractional
// after seq_div, hence float).
void rope(float* x, int n_heads, int head_dim, float pos, const RopeParams& p);

void silu(float* x, int n);                                    // x * sigmoid(x)
void swiglu(const float* gate, const float* up, float* out, int n);  // silu(gate) * up
void relu_sqr(float* x, int n);                                // max(x,0)^2
void softmax(float* x, int n);
void add(const float* a, const float* b, float* out, int n);
void scale(float* x, float s, int n);
void add_scaled(float* acc, const float* x, float s, int n);   // acc += s * x
// Softmax over n router logits, then the k largest probabilities: idx[k], w[k]
// (probabilities, in descending order; ties by lower index).
void topk_softmax(const float* logits, int n, int k, int* idx, float* w);

// ---------------------------------------------------------------- attention
// Causal grouped-query attention of a micro-batch of queries over cached K/V.
struct AttentionArgs {
  const float* q = nullptr;   // [n_tokens][n_head][head_dim_k]
  int n_tokens = 0, n_head = 0, n_kv_head = 0, head_dim_k = 0, head_dim_v = 0;
  DType kv_type = DType::F16; // F16 or F32
  const void* k = nullptr;    // cell c at k + c*k_row_bytes: [n_kv_head][head_dim_k]
  const void* v = nullptr;    // cell c at v + c*v_row_bytes: [n_kv_head][head_dim_v]
  size_t k_row_bytes = 0, v_row_bytes = 0;
  int n_kv = 0;               // cells [0, n_kv) are candidates
  const float* mask = nullptr;// [n_tokens][n_kv]: 0 = visible, -inf = hidden
  float scale = 1.0f;         // applied to q·k
  float* out = nullptr;       // [n_tokens][n_head][head_dim_v]
};
// Online softmax (no n_tokens × n_kv score matrix); rows with no visible cell give 0.
void attention(const AttentionArgs& a, ThreadPool& pool);

// ---------------------------------------------------------------- state space
// Causal depthwise conv1d with carried state, for n_seqs sequences of
// n_seq_tokens tokens each (sequence-major: token t of seq s is row s*T + t).
struct ConvArgs {
  const float* x = nullptr;     // rows of `channels`, row stride x_stride floats
  size_t x_stride = 0;
  int n_seqs = 0, n_seq_tokens = 0, channels = 0, width = 0;
  float* const* state = nullptr;// [n_seqs] -> [width-1][channels], read then updated in place
  const float* w = nullptr;     // [channels][width] (ggml ssm_conv1d layout)
  const float* bias = nullptr;  // [channels] or null
  bool silu = true;             // apply SiLU to the output
  float* out = nullptr;         // [n_seqs*T][channels]
};
void ssm_conv(const ConvArgs& a, ThreadPool& pool);

// Mamba2 selective scan (scalar A per head, B/C shared per group).
//   dA = exp(softplus(dt + dt_bias) * A[h]); S = S*dA + Δ x ⊗ B; y = S·C + D[h] x
struct Mamba2ScanArgs {
  int n_seqs = 0, n_seq_tokens = 0;
  int n_head = 0, head_dim = 0, n_group = 0, d_state = 0;
  const float* x = nullptr;  size_t x_stride = 0;   // per token [n_head][head_dim]
  const float* dt = nullptr; size_t dt_stride = 0;  // per token [n_head], before softplus
  const float* dt_bias = nullptr;                   // [n_head] or null
  const float* A = nullptr;                         // [n_head], negative
  const float* B = nullptr;  size_t B_stride = 0;   // per token [n_group][d_state]
  const float* C = nullptr;  size_t C_stride = 0;   // per token [n_group][d_state]
  const float* D = nullptr;                         // [n_head] or null
  float* const* state = nullptr;                    // [n_seqs] -> [n_head][head_dim][d_state]
  // [n_seqs] -> the state before the call, or null: updated in place. When
  // state_in[s] != state[s] the scan reads state_in[s] (left untouched) and
  // writes the whole of state[s]; the result is bit-identical to in place.
  const float* const* state_in = nullptr;
  float* y = nullptr;        size_t y_stride = 0;   // per token [n_head][head_dim]
};
void ssm_scan_mamba2(const Mamba2ScanArgs& a, ThreadPool& pool);             // picks a method
void ssm_scan_mamba2_sequential(const Mamba2ScanArgs& a, ThreadPool& pool);
void ssm_scan_mamba2_chunked(const Mamba2ScanArgs& a, int chunk, ThreadPool& pool);

// Mamba1 selective scan (A per channel × state, per-channel Δ).
//   Δ = softplus(dt + dt_bias); S[c][n] = S*exp(Δ A[c][n]) + Δ x[c] B[n]; y[c] = S[c]·C + D[c] x[c]
struct Mamba1ScanArgs {
  int n_seqs = 0, n_seq_tokens = 0, d_inner = 0, d_state = 0;
  const float* x = nullptr;  size_t x_stride = 0;   // per token [d_inner]
  const float* dt = nullptr; size_t dt_stride = 0;  // per token [d_inner], before softplus
  const float* dt_bias = nullptr;                   // [d_inner] or null
  const float* A = nullptr;                         // [d_inner][d_state]
  const float* B = nullptr;  size_t B_stride = 0;   // per token [d_state]
  const float* C = nullptr;  size_t C_stride = 0;   // per token [d_state]
  const float* D = nullptr;                         // [d_inner] or null
  float* const* state = nullptr;                    // [n_seqs] -> [d_inner][d_state]
  const float* const* state_in = nullptr;           // as Mamba2ScanArgs::state_in
  float* y = nullptr;        size_t y_stride = 0;   // per token [d_inner]
};
void ssm_scan_mamba1(const Mamba1ScanArgs& a, ThreadPool& pool);

}  // namespace tandem::kernels
