#pragma once
// Random-weight models with the exact tensor names, shapes and GGUF metadata
// of released checkpoints (`tandem gen-model`), for benchmarks and loader tests
// at real sizes without downloading weights.
//
// Supported: arch `granitehybrid` (IBM Granite-4.0-H, dense FFN), presets
//  * granite-4.0-h-350m: n_embd 768, 32 layers, attention at 10 13 17 27
//    (12 heads, 4 KV heads, head_dim 64, NoPE), n_ff 2048, Mamba2 with 48 heads
//    of 32 channels (d_inner 1536), d_state 128, 1 group, d_conv 4;
//    Granite scales 12 / 0.246 / 1/64 / 3 (embedding / residual / attention / logit).
//  * granite-4.0-h-1b: n_embd 1536, 40 layers, attention at 5 15 25 35
//    (12 heads, 4 KV heads, head_dim 128), n_ff 4096, 48 SSM heads of 64
//    channels (d_inner 3072), the rest as 350m.
//  * tiny: n_embd 256, 4 layers, attention at 1 and 3 (4 heads, 2 KV heads,
//    head_dim 64), n_ff 512, 16 SSM heads (d_inner 512), d_state 64: a model
//    every quant type can store (rows are multiples of 256).
// Output is tied to token_embd. The vocabulary (every `tokenizer.*` key) is
// copied from a GGUF file: default the dbrx vocabulary Granite-4.0 uses
// (fixtures/vocab/ggml-vocab-dbrx.gguf, 100352 tokens); for `tiny` the 512-token
// vocabulary of fixtures/models/tiny-granitehybrid.gguf. n_vocab = its token count.
//
// Initialisation: linear weights N(0, 1/fan_in) (an Irwin–Hall sum of four
// uniforms: exact mean and variance, tails cut at 3.46 sigma — fast); norm
// weights U(0.9, 1.1); Mamba A = -exp(A_log) with exp(A_log) ~ U(1, 16);
// dt bias = softplus^-1(Δ) with Δ log-uniform in [1e-3, 1e-1]; D ~ U(0.9, 1.1);
// conv bias U(-0.1, 0.1). Deterministic for a seed, whatever the thread count.
//
// Memory: each tensor is generated straight into its final type and streamed
// to disk (gguf_stream.h): peak RAM is the largest tensor (token_embd: 100352 x
// n_embd), not the model.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tandem::model {

struct GraniteHybridPreset {
  std::string name;
  int n_embd = 0, n_layer = 0, n_ctx = 0;
  std::vector<int> attn_layers;
  int n_head = 0, n_head_kv = 0, head_dim = 0;
  int n_ff = 0;
  int ssm_heads = 0, d_state = 0, n_group = 1, d_conv = 4, d_inner = 0;
  float embedding_scale = 1, residual_scale = 1, attention_scale = 1, logit_scale = 1;
  float rope_freq_base = 10000.0f;
  std::string default_vocab;  // relative to the fixtures folder
};

Result<GraniteHybridPreset> granitehybrid_preset(std::string_view name);
std::string granitehybrid_preset_names();

struct GenModelOptions {
  std::string arch = "granitehybrid";
  std::string preset;
  std::string type = "f32";  // any quantize target (quantize.h), incl. q4_k_m
  uint64_t seed = 1;
  std::string vocab_path;    // empty: the preset's default, found under the fixtures folder
  int n_threads = 0;         // 0: hardware concurrency (at most 8)
};

struct GenModelStats {
  int n_tensors = 0;
  int64_t n_params = 0;
  int n_vocab = 0;
  size_t bytes = 0;          // tensor data bytes
};

// Names and shapes (ggml order) of every tensor, in file order.
struct TensorShape {
  std::string name;
  std::vector<int64_t> shape;
};
std::vector<TensorShape> granitehybrid_tensor_shapes(const GraniteHybridPreset& p, int n_vocab);

// Generates and writes `out_path` (temp file + rename).
Result<GenModelStats> gen_model(const GenModelOptions& opts, const std::string& out_path);

// Finds `<fixtures>/<rel>`: $TANDEM_FIXTURES first, then `shared/fixtures` in
// the ancestors of the working directory and of the running executable (the
// project root's sibling `../shared/fixtures`). Error lists where it looked.
Result<std::string> find_fixture(const std::string& rel);

}  // namespace tandem::model
