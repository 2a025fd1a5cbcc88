// ModelConfig: the common `<arch>.*` GGUF keys (DESIGN.md §3) and derived sizes.
#include "model/config.h"

#include <algorithm>
#include <cmath>

namespace tandem::model {

const char* mixer_kind_name(MixerKind k) {
  switch (k) {
    case MixerKind::kNone: return "none";
    case MixerKind::kAttention: return "attention";
    case MixerKind::kMamba1: return "mamba1";
    case MixerKind::kMamba2: return "mamba2";
    case MixerKind::kAttnMamba2: return "attention+mamba2";
  }
  return "?";
}

const char* ffn_kind_name(FfnKind k) {
  switch (k) {
    case FfnKind::kNone: return "none";
    case FfnKind::kSwiGLU: return "swiglu";
    case FfnKind::kReluSqr: return "relu2";
    case FfnKind::kMoE: return "moe";
  }
  return "?";
}

const char* model_kind_name(ModelKind k) {
  switch (k) {
    case ModelKind::kAttentionOnly: return "attention-only";
    case ModelKind::kRecurrent: return "recurrent";
    case ModelKind::kHybrid: return "hybrid";
  }
  return "?";
}

static bool mixer_has_attention(MixerKind k) { return k == MixerKind::kAttention || k == MixerKind::kAttnMamba2; }
static bool mixer_has_recurrent(MixerKind k) {
  return k == MixerKind::kMamba1 || k == MixerKind::kMamba2 || k == MixerKind::kAttnMamba2;
}

ModelKind ModelConfig::kind() const {
  bool attn = false, rec = false;
  for (MixerKind m : mixer) {
    attn |= mixer_has_attention(m);
    rec |= mixer_has_recurrent(m);
  }
  if (rec && attn) return ModelKind::kHybrid;
  if (rec) return ModelKind::kRecurrent;
  return ModelKind::kAttentionOnly;
}

int ModelConfig::ssm_n_head() const {
  for (MixerKind m : mixer) {
    if (m == MixerKind::kMamba1) return ssm_d_inner;
  }
  return ssm_dt_rank;
}

int ModelConfig::ssm_head_dim() const {
  for (MixerKind m : mixer) {
    if (m == MixerKind::kMamba1) return 1;
  }
  return ssm_dt_rank > 0 ? ssm_d_inner / ssm_dt_rank : 0;
}

int ModelConfig::ssm_conv_channels() const {
  for (MixerKind m : mixer) {
    if (m == MixerKind::kMamba1) return ssm_d_inner;
  }
  return ssm_d_inner + 2 * ssm_n_group * ssm_d_state;
}

// A key that is either one integer for every layer or an array with one per layer.
Result<std::vector<int>> per_layer_ints(const gguf::File& f, const std::string& key, int n_layer, int def) {
  const gguf::Value* v = f.find(key);
  if (!v) return std::vector<int>(static_cast<size_t>(n_layer), def);
  if (v->is_array()) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> a, f.get_int_array(key));
    if (static_cast<int>(a.size()) != n_layer) {
      return TANDEM_ERR(kCorrupt, "{}: key '{}' has {} entries but the model has {} layers", f.path(), key,
                        a.size(), n_layer);
    }
    std::vector<int> r;
    for (int64_t x : a) {
      if (x < 0 || x > (1 << 24)) return TANDEM_ERR(kCorrupt, "{}: key '{}' has value {} out of range", f.path(), key, x);
      r.push_back(static_cast<int>(x));
    }
    return r;
  }
  TANDEM_ASSIGN_OR_RETURN(int64_t x, f.get_int(key));
  if (x < 0 || x > (1 << 24)) return TANDEM_ERR(kCorrupt, "{}: key '{}' has value {} out of range", f.path(), key, x);
  return std::vector<int>(static_cast<size_t>(n_layer), static_cast<int>(x));
}

static Result<int> get_dim(const gguf::File& f, const std::string& key, int64_t def, int64_t max = 1 << 24) {
  TANDEM_ASSIGN_OR_RETURN(int64_t x, f.get_int_or(key, def));
  if (x < 0 || x > max) return TANDEM_ERR(kCorrupt, "{}: key '{}' has value {} out of range", f.path(), key, x);
  return static_cast<int>(x);
}

static Result<int> require_dim(const gguf::File& f, const std::string& key) {
  if (!f.find(key)) return TANDEM_ERR(kNotFound, "{}: missing key '{}'", f.path(), key);
  return get_dim(f, key, 0);
}

Status read_common_config(const gguf::File& f, ModelConfig& c) {
  const std::string a = c.arch + ".";
  TANDEM_ASSIGN_OR_RETURN(c.n_embd, require_dim(f, a + "embedding_length"));
  TANDEM_ASSIGN_OR_RETURN(c.n_layer, require_dim(f, a + "block_count"));
  if (c.n_embd <= 0 || c.n_layer <= 0) {
    return TANDEM_ERR(kCorrupt, "{}: embedding_length {} / block_count {} must be positive", f.path(), c.n_embd,
                      c.n_layer);
  }
  TANDEM_ASSIGN_OR_RETURN(c.n_ctx_train, get_dim(f, a + "context_length", 0));
  if (!f.find(a + "attention.layer_norm_rms_epsilon")) {
    return TANDEM_ERR(kNotFound, "{}: missing key '{}attention.layer_norm_rms_epsilon'", f.path(), a);
  }
  TANDEM_ASSIGN_OR_RETURN(c.norm_eps, f.get_f32(a + "attention.layer_norm_rms_epsilon"));

  TANDEM_ASSIGN_OR_RETURN(c.n_head, per_layer_ints(f, a + "attention.head_count", c.n_layer, 0));
  // head_count_kv defaults to head_count (no GQA).
  if (f.find(a + "attention.head_count_kv")) {
    TANDEM_ASSIGN_OR_RETURN(c.n_head_kv, per_layer_ints(f, a + "attention.head_count_kv", c.n_layer, 0));
  } else {
    c.n_head_kv = c.n_head;
  }
  TANDEM_ASSIGN_OR_RETURN(c.n_ff, per_layer_ints(f, a + "feed_forward_length", c.n_layer, 0));

  int n_head0 = 0;
  for (int h : c.n_head) n_head0 = std::max(n_head0, h);
  const int def_hd = n_head0 > 0 ? c.n_embd / n_head0 : 0;
  TANDEM_ASSIGN_OR_RETURN(c.head_dim_k, get_dim(f, a + "attention.key_length", def_hd));
  TANDEM_ASSIGN_OR_RETURN(c.head_dim_v, get_dim(f, a + "attention.value_length", def_hd));

  // RoPE settings (whether RoPE is used at all is the arch's decision).
  TANDEM_ASSIGN_OR_RETURN(c.rope.freq_base, f.get_f32_or(a + "rope.freq_base", 10000.0f));
  TANDEM_ASSIGN_OR_RETURN(c.rope.n_rot, get_dim(f, a + "rope.dimension_count", c.head_dim_k));
  TANDEM_ASSIGN_OR_RETURN(float factor, f.get_f32_or(a + "rope.scaling.factor", 0.0f));
  if (factor == 0.0f) {
    TANDEM_ASSIGN_OR_RETURN(factor, f.get_f32_or(a + "rope.scale_linear", 0.0f));
  }
  c.rope.freq_scale = factor > 0.0f ? 1.0f / factor : 1.0f;
  TANDEM_ASSIGN_OR_RETURN(c.rope_finetuned, f.get_bool_or(a + "rope.scaling.finetuned", false));

  // Granite scales: 0 / absent means "not applied" (the reference guards on non-zero).
  TANDEM_ASSIGN_OR_RETURN(float es, f.get_f32_or(a + "embedding_scale", 0.0f));
  TANDEM_ASSIGN_OR_RETURN(float rs, f.get_f32_or(a + "residual_scale", 0.0f));
  TANDEM_ASSIGN_OR_RETURN(float as, f.get_f32_or(a + "attention.scale", 0.0f));
  TANDEM_ASSIGN_OR_RETURN(float ls, f.get_f32_or(a + "logit_scale", 0.0f));
  c.embedding_scale = es != 0.0f ? es : 1.0f;
  c.residual_scale = rs != 0.0f ? rs : 1.0f;
  c.logit_scale = ls != 0.0f ? ls : 1.0f;
  c.attn_scale = as != 0.0f ? as : (c.head_dim_k > 0 ? 1.0f / std::sqrt(static_cast<float>(c.head_dim_k)) : 1.0f);

  // State space.
  TANDEM_ASSIGN_OR_RETURN(c.ssm_d_conv, get_dim(f, a + "ssm.conv_kernel", 0, 64));
  TANDEM_ASSIGN_OR_RETURN(c.ssm_d_inner, get_dim(f, a + "ssm.inner_size", 0));
  TANDEM_ASSIGN_OR_RETURN(c.ssm_d_state, get_dim(f, a + "ssm.state_size", 0));
  TANDEM_ASSIGN_OR_RETURN(c.ssm_dt_rank, get_dim(f, a + "ssm.time_step_rank", 0));
  TANDEM_ASSIGN_OR_RETURN(c.ssm_n_group, get_dim(f, a + "ssm.group_count", 1));
  TANDEM_ASSIGN_OR_RETURN(c.ssm_dt_b_c_rms, f.get_bool_or(a + "ssm.dt_b_c_rms", false));

  // Mixture of experts.
  TANDEM_ASSIGN_OR_RETURN(c.n_expert, get_dim(f, a + "expert_count", 0, 4096));
  TANDEM_ASSIGN_OR_RETURN(c.n_expert_used, get_dim(f, a + "expert_used_count", 0, 4096));
  TANDEM_ASSIGN_OR_RETURN(c.n_ff_shexp, get_dim(f, a + "expert_shared_feed_forward_length", 0));
  if (c.n_expert > 0 && (c.n_expert_used <= 0 || c.n_expert_used > c.n_expert)) {
    return TANDEM_ERR(kCorrupt, "{}: {}expert_used_count {} must be in [1, expert_count {}]", f.path(), a,
                      c.n_expert_used, c.n_expert);
  }
  return Status::ok();
}

Status require_ssm(const gguf::File& f, const ModelConfig& c, bool mamba2) {
  const std::string a = c.arch + ".";
  auto need = [&](const char* key, int v) -> Status {
    if (v <= 0) return TANDEM_ERR(kNotFound, "{}: missing or zero key '{}{}'", f.path(), a, key);
    return Status::ok();
  };
  TANDEM_TRY(need("ssm.conv_kernel", c.ssm_d_conv));
  TANDEM_TRY(need("ssm.inner_size", c.ssm_d_inner));
  TANDEM_TRY(need("ssm.state_size", c.ssm_d_state));
  TANDEM_TRY(need("ssm.time_step_rank", c.ssm_dt_rank));
  if (mamba2) {
    TANDEM_TRY(need("ssm.group_count", c.ssm_n_group));
    if (c.ssm_d_inner % c.ssm_dt_rank != 0) {
      return TANDEM_ERR(kCorrupt, "{}: ssm.inner_size {} is not a multiple of ssm.time_step_rank (heads) {}",
                        f.path(), c.ssm_d_inner, c.ssm_dt_rank);
    }
    if (c.ssm_dt_rank % c.ssm_n_group != 0 || c.ssm_d_inner % c.ssm_n_group != 0) {
      return TANDEM_ERR(kCorrupt, "{}: ssm.group_count {} does not divide the {} heads / inner size {}", f.path(),
                        c.ssm_n_group, c.ssm_dt_rank, c.ssm_d_inner);
    }
  }
  return Status::ok();
}

Status require_attention(const gguf::File& f, const ModelConfig& c, int il) {
  const int nh = c.n_head[il], nkv = c.n_head_kv[il];
  if (nh <= 0 || nkv <= 0 || nh % nkv != 0) {
    return TANDEM_ERR(kCorrupt, "{}: layer {} has attention with head_count {} / head_count_kv {} (need >0 and a multiple)",
                      f.path(), il, nh, nkv);
  }
  if (c.head_dim_k <= 0 || c.head_dim_v <= 0) {
    return TANDEM_ERR(kCorrupt, "{}: attention head size k={} v={} invalid", f.path(), c.head_dim_k, c.head_dim_v);
  }
  return Status::ok();
}

}  // namespace tandem::model
