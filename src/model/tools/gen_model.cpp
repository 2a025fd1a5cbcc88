// Random Granite-4.0-H models; see gen_model.h.
#include "model/tools/gen_model.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "model/tools/gguf_stream.h"
#include "model/tools/quantize.h"

namespace tandem::model {

namespace {

// ------------------------------------------------------------------ random numbers
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// xoshiro256**: fast, good-quality 64-bit generator.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (auto& v : s_) v = splitmix64(seed);
  }
  uint64_t next() {
    const uint64_t r = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
  }
  // U[0, 1) with 24 bits.
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
  // Standard normal approximated by the sum of four 16-bit uniforms (mean 2,
  // variance 1/3): one generator call per value.
  float normal() {
    const uint64_t r = next();
    const float s = static_cast<float>((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48));
    constexpr float kInv = 1.0f / 65536.0f;
    constexpr float kSqrt3 = 1.7320508075688772f;
    return (s * kInv + 2.0f * kInv - 2.0f) * kSqrt3;  // +0.5 LSB per term centres the sum
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// ------------------------------------------------------------------ tensor specs
enum class Init { kNormal, kNearOne, kConvBias, kDtBias, kA, kD };

struct Spec {
  std::string name;
  std::vector<int64_t> shape;  // ggml order
  Init init;
  float std = 0;               // kNormal
};

int64_t n_elems(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::vector<Spec> granite_specs(const GraniteHybridPreset& p, int n_vocab) {
  const int64_t E = p.n_embd, C = p.d_inner + 2 * p.n_group * p.d_state;
  const int64_t in_proj = 2 * int64_t{p.d_inner} + 2 * int64_t{p.n_group} * p.d_state + p.ssm_heads;
  const int64_t q_dim = int64_t{p.n_head} * p.head_dim, kv_dim = int64_t{p.n_head_kv} * p.head_dim;
  auto lin = [](std::string n, int64_t in, int64_t out) {
    return Spec{std::move(n), {in, out}, Init::kNormal, 1.0f / std::sqrt(static_cast<float>(in))};
  };
  std::vector<Spec> s;
  s.push_back(lin("token_embd.weight", E, n_vocab));
  s.push_back({"output_norm.weight", {E}, Init::kNearOne});
  for (int l = 0; l < p.n_layer; ++l) {
    const std::string b = fmt::format("blk.{}.", l);
    const bool attn = std::find(p.attn_layers.begin(), p.attn_layers.end(), l) != p.attn_layers.end();
    s.push_back({b + "attn_norm.weight", {E}, Init::kNearOne});
    if (attn) {
      s.push_back(lin(b + "attn_q.weight", E, q_dim));
      s.push_back(lin(b + "attn_k.weight", E, kv_dim));
      s.push_back(lin(b + "attn_v.weight", E, kv_dim));
      s.push_back(lin(b + "attn_output.weight", q_dim, E));
    } else {
      // ssm_in rows: z [d_inner] | xBC [d_inner + 2*G*N] | dt [H]
      s.push_back(lin(b + "ssm_in.weight", E, in_proj));
      s.push_back({b + "ssm_conv1d.weight", {p.d_conv, C}, Init::kNormal,
                   1.0f / std::sqrt(static_cast<float>(p.d_conv))});
      s.push_back({b + "ssm_conv1d.bias", {C}, Init::kConvBias});
      s.push_back({b + "ssm_dt.bias", {p.ssm_heads}, Init::kDtBias});
      s.push_back({b + "ssm_a", {1, p.ssm_heads}, Init::kA});
      s.push_back({b + "ssm_d", {1, p.ssm_heads}, Init::kD});
      s.push_back({b + "ssm_norm.weight", {p.d_inner / p.n_group, p.n_group}, Init::kNearOne});
      s.push_back(lin(b + "ssm_out.weight", p.d_inner, E));
    }
    s.push_back({b + "ffn_norm.weight", {E}, Init::kNearOne});
    s.push_back(lin(b + "ffn_gate.weight", E, p.n_ff));
    s.push_back(lin(b + "ffn_up.weight", E, p.n_ff));
    s.push_back(lin(b + "ffn_down.weight", p.n_ff, E));
  }
  return s;
}

float draw(Init init, float std, Rng& r) {
  switch (init) {
    case Init::kNormal: return std * r.normal();
    case Init::kNearOne: return 0.9f + 0.2f * r.uniform();
    case Init::kConvBias: return -0.1f + 0.2f * r.uniform();
    case Init::kDtBias: {
      // Δ log-uniform in [1e-3, 1e-1]; the bias is softplus^-1(Δ) = log(expm1(Δ)).
      const double lo = std::log(1e-3), hi = std::log(1e-1);
      const double delta = std::exp(lo + (hi - lo) * r.uniform());
      return static_cast<float>(std::log(std::expm1(delta)));
    }
    case Init::kA: return -(1.0f + 15.0f * r.uniform());  // -exp(A_log), exp(A_log) ~ U(1, 16)
    case Init::kD: return 0.9f + 0.2f * r.uniform();
  }
  return 0;
}

int resolve_threads(int n) {
  if (n > 0) return n;
  const unsigned hc = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp(hc == 0 ? 1u : hc, 1u, 8u));
}

// Fills `dst` (type t) with rows of `spec`, in chunks of rows each drawn from its
// own generator (seed, tensor, chunk), so the bytes do not depend on threads.
void generate(const Spec& spec, int tensor_index, uint64_t seed, DType t, uint8_t* dst, int n_threads) {
  const int64_t row = spec.shape[0], rows = n_elems(spec.shape) / row;
  const int64_t rows_per_chunk = std::max<int64_t>(1, 65536 / row);
  const int64_t n_chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  const size_t rb = row_bytes(t, row);
  std::atomic<int64_t> next{0};
  auto work = [&]() {
    std::vector<float> buf(static_cast<size_t>(rows_per_chunk * row));
    for (int64_t c; (c = next.fetch_add(1)) < n_chunks;) {
      uint64_t sm = seed ^ (static_cast<uint64_t>(tensor_index) << 40) ^ static_cast<uint64_t>(c);
      Rng r(splitmix64(sm));
      const int64_t r0 = c * rows_per_chunk, r1 = std::min(rows, r0 + rows_per_chunk);
      const int64_t n = (r1 - r0) * row;
      for (int64_t i = 0; i < n; ++i) buf[i] = draw(spec.init, spec.std, r);
      for (int64_t k = r0; k < r1; ++k) {
        kernels::quantize_row(t, buf.data() + (k - r0) * row, dst + static_cast<size_t>(k) * rb, row);
      }
    }
  };
  n_threads = static_cast<int>(std::min<int64_t>(n_threads, n_chunks));
  if (n_threads <= 1) {
    work();
    return;
  }
  std::vector<std::thread> ts;
  for (int i = 0; i < n_threads; ++i) ts.emplace_back(work);
  for (auto& th : ts) th.join();
}

bool readable_file(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

}  // namespace

Result<GraniteHybridPreset> granitehybrid_preset(std::string_view name) {
  GraniteHybridPreset p;
  p.name = std::string(name);
  if (name == "granite-4.0-h-350m") {
    p.n_embd = 768; p.n_layer = 32; p.n_ctx = 32768; p.attn_layers = {10, 13, 17, 27};
    p.n_head = 12; p.n_head_kv = 4; p.head_dim = 64; p.n_ff = 2048;
    p.ssm_heads = 48; p.d_state = 128; p.n_group = 1; p.d_conv = 4; p.d_inner = 1536;
    p.embedding_scale = 12.0f; p.residual_scale = 0.246f; p.attention_scale = 0.015625f; p.logit_scale = 3.0f;
    p.default_vocab = "vocab/ggml-vocab-dbrx.gguf";
  } else if (name == "granite-4.0-h-1b") {
    p.n_embd = 1536; p.n_layer = 40; p.n_ctx = 131072; p.attn_layers = {5, 15, 25, 35};
    p.n_head = 12; p.n_head_kv = 4; p.head_dim = 128; p.n_ff = 4096;
    p.ssm_heads = 48; p.d_state = 128; p.n_group = 1; p.d_conv = 4; p.d_inner = 3072;
    // Scales of the released 1B are not in our notes; Granite-4.0 values of the same family.
    p.embedding_scale = 12.0f; p.residual_scale = 0.22f; p.attention_scale = 0.0078125f; p.logit_scale = 6.0f;
    p.default_vocab = "vocab/ggml-vocab-dbrx.gguf";
  } else if (name == "tiny") {
    p.n_embd = 256; p.n_layer = 4; p.n_ctx = 512; p.attn_layers = {1, 3};
    p.n_head = 4; p.n_head_kv = 2; p.head_dim = 64; p.n_ff = 512;
    p.ssm_heads = 16; p.d_state = 64; p.n_group = 1; p.d_conv = 4; p.d_inner = 512;
    p.embedding_scale = 1.5f; p.residual_scale = 0.5f; p.attention_scale = 0.015625f; p.logit_scale = 2.0f;
    p.default_vocab = "models/tiny-granitehybrid.gguf";
  } else {
    return TANDEM_ERR(kInvalidArgument, "unknown granitehybrid preset '{}' (one of: {})", name,
                      granitehybrid_preset_names());
  }
  return p;
}

std::string granitehybrid_preset_names() { return "granite-4.0-h-350m, granite-4.0-h-1b, tiny"; }

std::vector<TensorShape> granitehybrid_tensor_shapes(const GraniteHybridPreset& p, int n_vocab) {
  std::vector<TensorShape> r;
  for (const Spec& s : granite_specs(p, n_vocab)) r.push_back({s.name, s.shape});
  return r;
}

Result<std::string> find_fixture(const std::string& rel) {
  std::vector<std::filesystem::path> tried;
  if (const char* env = std::getenv("TANDEM_FIXTURES"); env != nullptr && *env != '\0') {
    tried.push_back(std::filesystem::path(env) / rel);
  }
  std::vector<std::filesystem::path> starts;
  std::error_code ec;
  starts.push_back(std::filesystem::current_path(ec));
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) starts.push_back(exe.parent_path());
  for (const auto& s : starts) {
    for (auto a = s; !a.empty(); a = a.parent_path()) {
      tried.push_back(a / "shared" / "fixtures" / rel);
      if (a == a.parent_path()) break;
    }
  }
  for (const auto& p : tried) {
    if (readable_file(p)) return p.string();
  }
  std::string where;
  for (size_t i = 0; i < tried.size() && i < 6; ++i) where += (i ? ", " : "") + tried[i].string();
  return TANDEM_ERR(kNotFound, "fixture '{}' not found (set TANDEM_FIXTURES or pass the path; looked in {}{})",
                    rel, where, tried.size() > 6 ? ", ..." : "");
}

Result<GenModelStats> gen_model(const GenModelOptions& opts, const std::string& out_path) {
  if (opts.arch != "granitehybrid") {
    return TANDEM_ERR(kUnsupported, "gen-model: architecture '{}' is not supported (only granitehybrid)", opts.arch);
  }
  TANDEM_ASSIGN_OR_RETURN(GraniteHybridPreset p, granitehybrid_preset(opts.preset));
  TANDEM_ASSIGN_OR_RETURN(QuantTarget target, parse_quant_target(opts.type));
  std::string vocab_path = opts.vocab_path;
  if (vocab_path.empty()) {
    TANDEM_ASSIGN_OR_RETURN(vocab_path, find_fixture(p.default_vocab));
  }
  TANDEM_ASSIGN_OR_RETURN(auto vocab, gguf::File::open(vocab_path));
  const gguf::Value* toks = vocab->find("tokenizer.ggml.tokens");
  if (toks == nullptr || !toks->is_array() || toks->size() == 0) {
    return TANDEM_ERR(kNotFound, "{}: no tokenizer.ggml.tokens array: not a vocabulary file", vocab_path);
  }
  const int n_vocab = static_cast<int>(toks->size());

  GgufStreamWriter w;
  const std::string a = "granitehybrid.";
  w.set_string("general.architecture", "granitehybrid");
  w.set_string("general.name", fmt::format("{} (random weights, seed {})", p.name, opts.seed));
  w.set_u32("general.file_type", target.file_type);
  w.set_u32("general.quantization_version", 2);
  w.set_u32(a + "context_length", static_cast<uint32_t>(p.n_ctx));
  for (const auto& [key, value] : vocab->metadata()) {
    if (key.rfind("tokenizer.", 0) == 0) w.set(key, value);
  }
  w.set_u32(a + "vocab_size", static_cast<uint32_t>(n_vocab));
  w.set_f32(a + "attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_u32(a + "embedding_length", static_cast<uint32_t>(p.n_embd));
  w.set_u32(a + "block_count", static_cast<uint32_t>(p.n_layer));
  w.set_u32(a + "feed_forward_length", static_cast<uint32_t>(p.n_ff));
  w.set_u32(a + "attention.head_count", static_cast<uint32_t>(p.n_head));
  std::vector<int32_t> kv(static_cast<size_t>(p.n_layer), 0);  // 0 marks a Mamba2 layer
  for (int l : p.attn_layers) kv[static_cast<size_t>(l)] = p.n_head_kv;
  w.set_i32_array(a + "attention.head_count_kv", kv);
  w.set_u32(a + "attention.key_length", static_cast<uint32_t>(p.head_dim));
  w.set_u32(a + "attention.value_length", static_cast<uint32_t>(p.head_dim));
  w.set_u32(a + "rope.dimension_count", static_cast<uint32_t>(p.head_dim));
  w.set_f32(a + "rope.freq_base", p.rope_freq_base);
  w.set_bool(a + "rope.scaling.finetuned", false);  // NoPE, as released
  w.set_u32(a + "ssm.conv_kernel", static_cast<uint32_t>(p.d_conv));
  w.set_u32(a + "ssm.inner_size", static_cast<uint32_t>(p.d_inner));
  w.set_u32(a + "ssm.state_size", static_cast<uint32_t>(p.d_state));
  w.set_u32(a + "ssm.time_step_rank", static_cast<uint32_t>(p.ssm_heads));
  w.set_u32(a + "ssm.group_count", static_cast<uint32_t>(p.n_group));
  w.set_f32(a + "embedding_scale", p.embedding_scale);
  w.set_f32(a + "residual_scale", p.residual_scale);
  w.set_f32(a + "attention.scale", p.attention_scale);
  w.set_f32(a + "logit_scale", p.logit_scale);

  const std::vector<Spec> specs = granite_specs(p, n_vocab);
  TypePlanner plan(target);
  for (const Spec& s : specs) plan.count(s.name);
  std::vector<DType> types;
  for (const Spec& s : specs) {
    const DType t = plan.type_for(s.name, s.shape, DType::F32);
    if (!kernels::can_quantize(t)) {
      return TANDEM_ERR(kUnsupported, "gen-model: tensor {}: the kernels cannot write {}", s.name, dtype_name(t));
    }
    types.push_back(t);
    w.add_tensor(s.name, t, s.shape);
  }
  // Tensors are generated one at a time and streamed to disk: peak memory is
  // the largest tensor (token_embd), not the model.
  TANDEM_TRY(w.begin(out_path));
  const int n_threads = resolve_threads(opts.n_threads);
  GenModelStats stats;
  stats.n_vocab = n_vocab;
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < specs.size(); ++i) {
    buf.resize(w.tensor_bytes(i));
    generate(specs[i], static_cast<int>(i), opts.seed, types[i], buf.data(), n_threads);
    TANDEM_TRY(w.write_tensor(buf.data(), buf.size()));
    stats.bytes += buf.size();
    stats.n_params += n_elems(specs[i].shape);
  }
  stats.n_tensors = static_cast<int>(specs.size());
  TANDEM_TRY(w.finish());
  return stats;
}

}  // namespace tandem::model
