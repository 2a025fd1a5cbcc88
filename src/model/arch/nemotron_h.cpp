// nemotron_h: every layer is exactly one of Mamba2 (head_count_kv[i] == 0 and
// feed_forward_length[i] == 0), attention without RoPE (feed_forward_length[i]
// == 0) or a ReLU² MLP; each is RMSNorm(h)·attn_norm → block → residual.
#include "model/arch/arch.h"
#include "model/arch/arch_common.h"
#include "model/config.h"

namespace tandem::model {
namespace {

Status configure(const gguf::File& f, ModelConfig& c) {
  bool any_ssm = false;
  for (int il = 0; il < c.n_layer; ++il) {
    if (c.n_head_kv[il] == 0 && c.n_ff[il] == 0) {
      c.mixer[il] = MixerKind::kMamba2;
      c.ffn[il] = FfnKind::kNone;
      any_ssm = true;
    } else if (c.n_ff[il] == 0) {
      TANDEM_TRY(require_attention(f, c, il));
      c.mixer[il] = MixerKind::kAttention;
      c.ffn[il] = FfnKind::kNone;
    } else {
      c.mixer[il] = MixerKind::kNone;
      c.ffn[il] = FfnKind::kReluSqr;
      c.n_head_kv[il] = 0;
    }
  }
  if (any_ssm) TANDEM_TRY(require_ssm(f, c, /*mamba2=*/true));
  c.use_rope = false;
  return Status::ok();
}

Status bind(Binder& b, const ModelConfig& c, Weights& w) {
  for (int il = 0; il < c.n_layer; ++il) {
    LayerWeights& lw = w.layers[il];
    TANDEM_TRY(bind_norm(b, c, blk(il, "attn_norm.weight"), &lw.attn_norm));
    switch (c.mixer[il]) {
      case MixerKind::kMamba2: TANDEM_TRY(bind_mamba2(b, c, il, lw, /*norm_optional=*/false)); break;
      case MixerKind::kAttention: TANDEM_TRY(bind_attention(b, c, il, lw)); break;
      default: TANDEM_TRY(bind_relu2(b, c, il, lw)); break;
    }
  }
  return Status::ok();
}

Status layer(Fwd& f, int il) {
  const LayerWeights& lw = f.w.layers[il];
  return norm_mixer_residual(f, lw.attn_norm, [&](const float* x, float* out) {
    switch (f.cfg.mixer[il]) {
      case MixerKind::kMamba2: return mamba2_mixer(f, lw, il, x, out);
      case MixerKind::kAttention: return attention_mixer(f, lw, il, x, out, /*rope=*/false);
      default:
        ffn_relu2(f, lw.ffn_up, lw.ffn_up_b, lw.ffn_down, lw.ffn_down_b, x, out);
        return Status::ok();
    }
  });
}

}  // namespace

const ArchOps& nemotron_h_arch() {
  static const ArchOps ops{"nemotron_h", configure, bind, layer};
  return ops;
}

}  // namespace tandem::model
