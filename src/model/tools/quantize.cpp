// GGUF weight quantization; see quantize.h for which tensors become what.
#include "model/tools/quantize.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <thread>

#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "model/tools/gguf_stream.h"

namespace tandem::model {

namespace {

struct TargetDef {
  const char* name;
  DType base;
  uint32_t ftype;
  QuantTarget::Mix mix;
};
constexpr TargetDef kTargets[] = {
    {"f32", DType::F32, 0, QuantTarget::Mix::kNone},
    {"f16", DType::F16, 1, QuantTarget::Mix::kNone},
    {"bf16", DType::BF16, 32, QuantTarget::Mix::kNone},
    {"q8_0", DType::Q8_0, 7, QuantTarget::Mix::kNone},
    {"q4_0", DType::Q4_0, 2, QuantTarget::Mix::kNone},
    {"q4_1", DType::Q4_1, 3, QuantTarget::Mix::kNone},
    {"q5_0", DType::Q5_0, 8, QuantTarget::Mix::kNone},
    {"q5_1", DType::Q5_1, 9, QuantTarget::Mix::kNone},
    {"q4_k", DType::Q4_K, 14, QuantTarget::Mix::kKS},  // the reference's Q4_K_S
    {"q5_k", DType::Q5_K, 16, QuantTarget::Mix::kNone},  // Q5_K_S
    {"q6_k", DType::Q6_K, 18, QuantTarget::Mix::kNone},
    {"q4_k_m", DType::Q4_K, 15, QuantTarget::Mix::kKM},
    {"q5_k_m", DType::Q5_K, 17, QuantTarget::Mix::kKM},
};

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }
bool ends_with(std::string_view s, std::string_view suf) {
  return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf;
}

// The reference's use_more_bits: first and last eighth, and every third in between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// Fallback when rows do not fit the block of `t`.
DType fit_rows(DType t, int64_t row_len) {
  for (int guard = 0; guard < 4; ++guard) {
    if (row_len % dtype_info(t).block_elems == 0) return t;
    switch (t) {
      case DType::Q4_K: t = DType::Q5_0; break;
      case DType::Q5_K: t = DType::Q5_1; break;
      case DType::Q6_K: t = DType::Q8_0; break;
      default: t = DType::F16; break;
    }
  }
  return t;
}

int resolve_threads(int n) {
  if (n > 0) return n;
  const unsigned hc = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp(hc == 0 ? 1u : hc, 1u, 8u));
}

}  // namespace

Result<QuantTarget> parse_quant_target(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const TargetDef& d : kTargets) {
    if (lower == d.name) return QuantTarget{d.name, d.base, d.ftype, d.mix};
  }
  return TANDEM_ERR(kInvalidArgument, "unknown quantization type '{}' (one of: {})", name, quant_target_names());
}

std::string quant_target_names() {
  std::string s;
  for (const TargetDef& d : kTargets) {
    if (!s.empty()) s += ", ";
    s += d.name;
  }
  return s;
}

bool is_quantizable(std::string_view name, const std::vector<int64_t>& shape) {
  if (shape.size() < 2) return false;
  if (contains(name, "_norm")) return false;  // attn_norm, ssm_norm, ffn_norm, ...
  if (contains(name, "ssm_conv1d") || contains(name, "ffn_gate_inp")) return false;
  if (ends_with(name, ".ssm_a") || ends_with(name, ".ssm_d")) return false;
  if (contains(name, "ssm_x.weight") || contains(name, "ssm_dt.weight")) return false;  // Mamba1
  if (!ends_with(name, ".weight")) return false;
  return true;
}

void TypePlanner::count(std::string_view name) {
  if (name == "output.weight") has_output_ = true;
  if (contains(name, "attn_v.weight")) ++n_attn_v_;
  if (contains(name, "ffn_down")) ++n_ffn_down_;
}

DType TypePlanner::type_for(std::string_view name, const std::vector<int64_t>& shape, DType src) {
  // Counters advance for every matching tensor, as in the reference.
  const bool is_v = contains(name, "attn_v.weight");
  const bool is_down = contains(name, "ffn_down");
  const int iv = is_v ? i_attn_v_++ : 0;
  const int id = is_down ? i_ffn_down_++ : 0;
  if (!is_quantizable(name, shape)) return src;
  DType t = t_.base;
  if (dtype_info(t).quantized) {
    const bool is_out = name == "output.weight" || (!has_output_ && name == "token_embd.weight");
    if (is_out) {
      if (shape[0] % 256 != 0) t = DType::Q8_0;
      else if (t != DType::Q8_0) t = DType::Q6_K;
    } else if (t_.mix == QuantTarget::Mix::kKM) {
      if (is_v && use_more_bits(iv, n_attn_v_)) t = DType::Q6_K;
      if (is_down && use_more_bits(id, n_ffn_down_)) t = DType::Q6_K;
    } else if (t_.mix == QuantTarget::Mix::kKS) {
      if (is_v && iv < 4) t = DType::Q5_K;
      if (is_down && id < n_ffn_down_ / 8) t = DType::Q5_K;
    }
  }
  return fit_rows(t, shape[0]);
}

bool convert_rows(const void* src, DType src_type, void* dst, DType dst_type, int64_t row_len,
                  int64_t n_rows, int n_threads) {
  const size_t in_row = row_bytes(src_type, row_len), out_row = row_bytes(dst_type, row_len);
  if (src_type == dst_type) {
    std::memcpy(dst, src, in_row * static_cast<size_t>(n_rows));
    return true;
  }
  if (!kernels::can_dequantize(src_type) || !kernels::can_quantize(dst_type)) return false;
  n_threads = std::max(1, std::min<int>(resolve_threads(n_threads), static_cast<int>(std::min<int64_t>(n_rows, 64))));
  auto work = [&](int64_t r0, int64_t r1) {
    std::vector<float> buf(static_cast<size_t>(row_len));
    for (int64_t r = r0; r < r1; ++r) {
      const auto* s = static_cast<const uint8_t*>(src) + static_cast<size_t>(r) * in_row;
      auto* d = static_cast<uint8_t*>(dst) + static_cast<size_t>(r) * out_row;
      if (src_type == DType::F32) {
        kernels::quantize_row(dst_type, reinterpret_cast<const float*>(s), d, row_len);
      } else {
        kernels::dequantize_row(src_type, s, buf.data(), row_len);
        kernels::quantize_row(dst_type, buf.data(), d, row_len);
      }
    }
  };
  if (n_threads == 1) {
    work(0, n_rows);
    return true;
  }
  std::vector<std::thread> ts;
  const int64_t per = (n_rows + n_threads - 1) / n_threads;
  for (int t = 0; t < n_threads; ++t) {
    const int64_t r0 = t * per, r1 = std::min(n_rows, r0 + per);
    if (r0 < r1) ts.emplace_back(work, r0, r1);
  }
  for (auto& th : ts) th.join();
  return true;
}

Result<QuantizeStats> quantize_gguf(const std::string& in_path, const std::string& out_path,
                                    const QuantTarget& target, const QuantizeOptions& opts) {
  TANDEM_ASSIGN_OR_RETURN(auto in, gguf::File::open(in_path));
  GgufStreamWriter w;
  for (const auto& [key, value] : in->metadata()) w.set(key, value);
  if (in->alignment() != 32) w.set_u32("general.alignment", static_cast<uint32_t>(in->alignment()));
  w.set_u32("general.quantization_version", 2);
  w.set_u32("general.file_type", target.file_type);

  TypePlanner plan(target);
  for (const gguf::TensorInfo& t : in->tensors()) plan.count(t.name);
  std::vector<DType> types;
  for (const gguf::TensorInfo& t : in->tensors()) {
    types.push_back(plan.type_for(t.name, t.shape, t.type));
    w.add_tensor(t.name, types.back(), t.shape);
  }
  // One tensor at a time: the input is mmapped, converted tensors are streamed out.
  TANDEM_TRY(w.begin(out_path));
  QuantizeStats stats;
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < in->tensors().size(); ++i) {
    const gguf::TensorInfo& t = in->tensors()[i];
    const DType dst = types[i];
    stats.bytes_in += t.bytes;
    if (dst == t.type) {
      TANDEM_TRY(w.write_tensor(t.data, t.bytes));
      stats.bytes_out += t.bytes;
      ++stats.n_copied;
      continue;
    }
    const int64_t row_len = t.shape[0];
    const int64_t n_rows = t.n_elements() / row_len;
    buf.resize(w.tensor_bytes(i));
    if (!convert_rows(t.data, t.type, buf.data(), dst, row_len, n_rows, opts.n_threads)) {
      return TANDEM_ERR(kUnsupported, "{}: tensor {}: cannot convert {} to {}", in_path, t.name,
                        dtype_name(t.type), dtype_name(dst));
    }
    TANDEM_TRY(w.write_tensor(buf.data(), buf.size()));
    stats.bytes_out += buf.size();
    ++stats.n_converted;
  }
  TANDEM_TRY(w.finish());
  return stats;
}

}  // namespace tandem::model
