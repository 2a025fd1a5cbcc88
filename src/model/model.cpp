// Model loading: config from metadata, weight binding, per-layer memory specs,
// fingerprint.
#include "model/model.h"

#include <cstring>

#include "model/arch/arch.h"
#include "model/config.h"
#include "model/layers/bind.h"
#include "model/weights.h"

namespace tandem::model {
namespace {

std::vector<memory::LayerSpec> make_specs(const ModelConfig& c) {
  std::vector<memory::LayerSpec> specs(static_cast<size_t>(c.n_layer));
  for (int il = 0; il < c.n_layer; ++il) {
    memory::LayerSpec& s = specs[il];
    const MixerKind m = c.mixer[il];
    const bool attn = m == MixerKind::kAttention || m == MixerKind::kAttnMamba2;
    const bool rec = m == MixerKind::kMamba1 || m == MixerKind::kMamba2 || m == MixerKind::kAttnMamba2;
    s.kind = attn && rec ? memory::LayerKind::kBoth
             : attn      ? memory::LayerKind::kAttention
             : rec       ? memory::LayerKind::kRecurrent
                         : memory::LayerKind::kNone;
    if (attn) {
      s.attn.n_kv_heads = c.n_head_kv[il];
      s.attn.head_dim_k = c.head_dim_k;
      s.attn.head_dim_v = c.head_dim_v;
      if (c.use_rope) s.attn.rope = c.rope;
    }
    if (rec) {
      s.rec.conv_width = c.ssm_d_conv;
      s.rec.d_state = c.ssm_d_state;
      if (m == MixerKind::kMamba1) {
        s.rec.conv_channels = c.ssm_d_inner;
        s.rec.n_head = c.ssm_d_inner;
        s.rec.head_dim = 1;
      } else {
        s.rec.conv_channels = c.ssm_d_inner + 2 * c.ssm_n_group * c.ssm_d_state;
        s.rec.n_head = c.ssm_dt_rank;
        s.rec.head_dim = c.ssm_d_inner / c.ssm_dt_rank;
      }
    }
  }
  return specs;
}

// FNV-1a over the architecture, hyper-parameters and every tensor's name, type, shape.
class Fnv {
 public:
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) {
      h_ ^= b[i];
      h_ *= 1099511628211ull;
    }
  }
  void str(const std::string& s) {
    bytes(s.data(), s.size());
    u64(s.size());
  }
  void u64(uint64_t v) { bytes(&v, sizeof v); }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 14695981039346656037ull;
};

uint64_t compute_fingerprint(const ModelConfig& c, const gguf::File& f) {
  Fnv h;
  h.str(c.arch);
  for (int v : {c.n_vocab, c.n_embd, c.n_layer, c.head_dim_k, c.head_dim_v, c.ssm_d_conv, c.ssm_d_inner,
                c.ssm_d_state, c.ssm_dt_rank, c.ssm_n_group}) {
    h.u64(static_cast<uint64_t>(v));
  }
  for (int il = 0; il < c.n_layer; ++il) {
    h.u64(static_cast<uint64_t>(c.mixer[il]));
    h.u64(static_cast<uint64_t>(c.n_head_kv[il]));
  }
  for (const gguf::TensorInfo& t : f.tensors()) {
    h.str(t.name);
    h.u64(static_cast<uint64_t>(t.type));
    for (int64_t d : t.shape) h.u64(static_cast<uint64_t>(d));
  }
  return h.value();
}

}  // namespace

Model::Model() = default;
Model::~Model() = default;

Result<std::unique_ptr<Model>> Model::load(const std::string& path, const LoadOptions& opts) {
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<gguf::File> file,
                          gguf::File::open(path, opts.load));
  return from_file(std::move(file), opts);
}

Result<std::unique_ptr<Model>> Model::from_file(std::unique_ptr<gguf::File> file, const LoadOptions& opts) {
  std::unique_ptr<Model> m(new Model());
  const gguf::File& f = *file;
  ModelConfig& c = m->cfg_;

  if (!f.find("general.architecture")) {
    return TANDEM_ERR(kNotFound, "{}: missing key 'general.architecture'", f.path());
  }
  TANDEM_ASSIGN_OR_RETURN(c.arch, f.get_string("general.architecture"));
  const ArchOps* arch = find_arch(c.arch);
  if (!arch) {
    return TANDEM_ERR(kUnsupported,
                      "{}: unknown architecture '{}' (supported: llama, mamba, mamba2, granitehybrid, jamba, "
                      "falcon-h1, nemotron_h)",
                      f.path(), c.arch);
  }
  TANDEM_TRY(read_common_config(f, c));

  // The vocabulary size is the embedding matrix's row count.
  const gguf::TensorInfo* emb = f.find_tensor("token_embd.weight");
  if (!emb) return TANDEM_ERR(kNotFound, "{}: missing tensor 'token_embd.weight'", f.path());
  if (emb->shape.size() != 2 || emb->shape[1] <= 0 || emb->shape[1] > (int64_t{1} << 24)) {
    return TANDEM_ERR(kCorrupt, "{}: tensor 'token_embd.weight' must be 2-D [n_embd, n_vocab]", f.path());
  }
  c.n_vocab = static_cast<int>(emb->shape[1]);

  c.mixer.assign(static_cast<size_t>(c.n_layer), MixerKind::kNone);
  c.ffn.assign(static_cast<size_t>(c.n_layer), FfnKind::kNone);
  TANDEM_TRY(arch->configure(f, c));

  auto w = std::make_unique<Weights>();
  Binder b(f, *w, opts.check_tensor_types);
  TANDEM_TRY(b.matrix("token_embd.weight", c.n_embd, c.n_vocab, true, &w->token_embd));
  TANDEM_TRY(bind_norm(b, c, "output_norm.weight", &w->output_norm));
  TANDEM_TRY(b.matrix("output.weight", c.n_embd, c.n_vocab, false, &w->output));
  if (!present(w->output)) {  // tied LM head
    w->output = w->token_embd;
    w->output_tied = true;
  }
  w->layers.resize(static_cast<size_t>(c.n_layer));
  TANDEM_TRY(arch->bind(b, c, *w));

  m->specs_ = make_specs(c);
  m->fingerprint_ = compute_fingerprint(c, f);
  m->w_ = std::move(w);
  m->file_ = std::move(file);
  return m;
}

}  // namespace tandem::model
