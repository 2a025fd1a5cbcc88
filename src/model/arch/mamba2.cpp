// mamba2 (Mamba2 only): RMSNorm → Mamba2 mixer → residual. No FFN.
// Its `attention.head_count` holds the SSM head count: attention keys are ignored.
#include "model/arch/arch.h"
#include "model/config.h"
#include "model/layers/bind.h"
#include "model/layers/layers.h"

namespace tandem::model {
namespace {

Status configure(const gguf::File& f, ModelConfig& c) {
  TANDEM_TRY(require_ssm(f, c, /*mamba2=*/true));
  for (int il = 0; il < c.n_layer; ++il) {
    c.mixer[il] = MixerKind::kMamba2;
    c.ffn[il] = FfnKind::kNone;
    c.n_head[il] = c.n_head_kv[il] = c.n_ff[il] = 0;
  }
  c.head_dim_k = c.head_dim_v = 0;
  return Status::ok();
}

Status bind(Binder& b, const ModelConfig& c, Weights& w) {
  for (int il = 0; il < c.n_layer; ++il) {
    LayerWeights& lw = w.layers[il];
    TANDEM_TRY(bind_norm(b, c, blk(il, "attn_norm.weight"), &lw.attn_norm));
    TANDEM_TRY(bind_mamba2(b, c, il, lw, /*norm_optional=*/false));
  }
  return Status::ok();
}

Status layer(Fwd& f, int il) {
  const LayerWeights& lw = f.w.layers[il];
  const int E = f.cfg.n_embd;
  norm_rows(f.h(), lw.attn_norm, f.xn(), f.T, E, f.cfg.norm_eps);
  TANDEM_TRY(mamba2_mixer(f, lw, il, f.xn(), f.mix()));
  residual_add(f.h(), f.mix(), 1.0f, f.T, E);
  return Status::ok();
}

}  // namespace

const ArchOps& mamba2_arch() {
  static const ArchOps ops{"mamba2", configure, bind, layer};
  return ops;
}

}  // namespace tandem::model
