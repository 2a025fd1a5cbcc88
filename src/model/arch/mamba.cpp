// mamba (Mamba1 only): RMSNorm → Mamba1 mixer → residual. No FFN.
#include "model/arch/arch.h"
#include "model/config.h"
#include "model/layers/bind.h"
#include "model/layers/layers.h"

namespace tandem::model {
namespace {

Status configure(const gguf::File& f, ModelConfig& c) {
  TANDEM_TRY(require_ssm(f, c, /*mamba2=*/false));
  for (int il = 0; il < c.n_layer; ++il) {
    c.mixer[il] = MixerKind::kMamba1;
    c.ffn[il] = FfnKind::kNone;
    c.n_head[il] = c.n_head_kv[il] = c.n_ff[il] = 0;
  }
  return Status::ok();
}

Status bind(Binder& b, const ModelConfig& c, Weights& w) {
  for (int il = 0; il < c.n_layer; ++il) {
    LayerWeights& lw = w.layers[il];
    TANDEM_TRY(bind_norm(b, c, blk(il, "attn_norm.weight"), &lw.attn_norm));
    // dt/B/C norm weights are optional (Falcon-Mamba files set ssm.dt_b_c_rms
    // and normalise without weights).
    TANDEM_TRY(bind_mamba1(b, c, il, lw, /*bc_norms=*/false));
  }
  return Status::ok();
}

Status layer(Fwd& f, int il) {
  const LayerWeights& lw = f.w.layers[il];
  const int E = f.cfg.n_embd;
  norm_rows(f.h(), lw.attn_norm, f.xn(), f.T, E, f.cfg.norm_eps);
  TANDEM_TRY(mamba1_mixer(f, lw, il, f.xn(), f.mix()));
  residual_add(f.h(), f.mix(), 1.0f, f.T, E);
  return Status::ok();
}

}  // namespace

const ArchOps& mamba_arch() {
  static const ArchOps ops{"mamba", configure, bind, layer};
  return ops;
}

}  // namespace tandem::model
