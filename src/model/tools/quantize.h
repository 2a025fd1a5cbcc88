#pragma once
// Weight quantization of GGUF files (`tandem quantize`) and the per-tensor type
// choice shared with `tandem gen-model`.
//
// Which tensors are converted (the reference quantizer's rules): weight
// matrices (>= 2 dims) only; never norms (`*_norm*`), 1-D tensors (biases,
// norms), Mamba's small tensors (`ssm_a`, `ssm_d`, `ssm_conv1d.*`, Mamba1's
// `ssm_x.weight` / `ssm_dt.weight`) or MoE routers (`ffn_gate_inp`): those keep
// their source type (F32 in practice).
//
// Mixes, as the reference does them for a quantized base type:
//  * the output matrix (`output.weight`, or `token_embd.weight` when the
//    output is tied to it) becomes Q6_K — Q8_0 if its rows are not a multiple
//    of 256 — unless the base is Q8_0 (kept Q8_0);
//  * q4_k_m / q5_k_m: `attn_v` and `ffn_down` tensors get Q6_K when
//    use_more_bits(i, n): the first and last eighth of them and every third
//    one in between (i counts those tensors in file order, n is their number);
//  * q4_k (the reference's Q4_K_S): the first 4 `attn_v` and the first eighth
//    of `ffn_down` tensors get Q5_K.
//  For MoE expert tensors (`ffn_down_exps`) the counting is by tensor, not by
//  layer, which only approximates the reference there.
// Rows whose length is not a multiple of the chosen type's block fall back as
// the reference does: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; a 32-block type
// that still does not fit -> F16.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace tandem::model {

struct QuantTarget {
  std::string name;        // as given: "q4_k_m", "f16", ...
  DType base = DType::F32; // type of ordinary weight matrices
  uint32_t file_type = 0;  // general.file_type (the reference's llama_ftype numbering)
  enum class Mix { kNone, kKM, kKS } mix = Mix::kNone;
};

// f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k q4_k_m q5_k_m (case-insensitive).
Result<QuantTarget> parse_quant_target(std::string_view name);
std::string quant_target_names();  // for help / error messages

// True for weight matrices the quantizer converts (see the rules above).
bool is_quantizable(std::string_view name, const std::vector<int64_t>& shape);

// Chooses the stored type of each tensor. Feed it every tensor name first
// (count()), then ask type_for() in file order.
class TypePlanner {
 public:
  explicit TypePlanner(QuantTarget target) : t_(std::move(target)) {}
  void count(std::string_view name);
  // `src` is the tensor's current type (kept for tensors that are not converted).
  DType type_for(std::string_view name, const std::vector<int64_t>& shape, DType src);

 private:
  QuantTarget t_;
  bool has_output_ = false;
  int n_attn_v_ = 0, n_ffn_down_ = 0;
  int i_attn_v_ = 0, i_ffn_down_ = 0;
};

// Converts `n_rows` rows of `row_len` elements from `src_type` to `dst_type`
// (through f32), splitting rows over `n_threads` threads. False when the
// kernels cannot read or write one of the types.
bool convert_rows(const void* src, DType src_type, void* dst, DType dst_type, int64_t row_len,
                  int64_t n_rows, int n_threads);

struct QuantizeOptions {
  int n_threads = 0;  // 0 = hardware concurrency (capped at 8)
};

struct QuantizeStats {
  size_t bytes_in = 0, bytes_out = 0;
  int n_converted = 0, n_copied = 0;
};

// Reads `in_path`, writes `out_path` (temp file + rename) with every metadata
// key copied, `general.file_type` and `general.quantization_version` set.
Result<QuantizeStats> quantize_gguf(const std::string& in_path, const std::string& out_path,
                                    const QuantTarget& target, const QuantizeOptions& opts = {});

}  // namespace tandem::model
