#pragma once
// Builders shared by several architecture files (internal to src/model):
// the attention/SSM mixer layout of granitehybrid and jamba; the bind/layer
// pair of the pre-norm block archs (llama, jamba, granitehybrid); the whole
// configure/bind/layer of the Mamba-only archs (mamba, mamba2); and the
// "h += mixer(RMSNorm(h) · attn_norm)" step these and nemotron_h run.
// Each arch file keeps its ArchOps entry and whatever is its own.
#include "core/status.h"
#include "model/config.h"
#include "model/layers/bind.h"
#include "model/layers/block.h"
#include "model/layers/fwd.h"
#include "model/layers/layers.h"
#include "model/weights.h"

namespace tandem::model {

// The mixers of a hybrid whose recurrent layers are marked by
// head_count_kv[i] == 0 (granitehybrid, jamba): those layers get `ssm`
// (kMamba1 or kMamba2), the others attention; the SSM keys are required when
// any layer is recurrent.
inline Status configure_kv_marked_mixers(const gguf::File& f, ModelConfig& c, MixerKind ssm) {
  bool any_ssm = false;
  for (int il = 0; il < c.n_layer; ++il) {
    if (c.n_head_kv[il] == 0) {
      c.mixer[il] = ssm;
      any_ssm = true;
    } else {
      TANDEM_TRY(require_attention(f, c, il));
      c.mixer[il] = MixerKind::kAttention;
    }
  }
  if (any_ssm) TANDEM_TRY(require_ssm(f, c, /*mamba2=*/ssm == MixerKind::kMamba2));
  return Status::ok();
}

// h += mixer(RMSNorm(h) · norm) on the residual stream f.h() [T][n_embd].
// `mixer(x, out)` reads x [T][n_embd] (f.xn()) and writes out [T][n_embd]
// (f.mix()); it returns a Status.
template <class Mixer>
Status norm_mixer_residual(Fwd& f, const Vec& norm, Mixer&& mixer) {
  const int E = f.cfg.n_embd;
  norm_rows(f.h(), norm, f.xn(), f.T, E, f.cfg.norm_eps);
  TANDEM_TRY(mixer(f.xn(), f.mix()));
  residual_add(f.h(), f.mix(), 1.0f, f.T, E);
  return Status::ok();
}

// ArchOps::bind / ::layer of an architecture made of the pre-norm block
// (model/layers/block.h); Style gives the block's knobs from the config.
template <PrenormBlock (*Style)(const ModelConfig&)>
struct PrenormArch {
  static Status bind(Binder& b, const ModelConfig& c, Weights& w) {
    for (int il = 0; il < c.n_layer; ++il) TANDEM_TRY(bind_prenorm_block(b, c, il, w.layers[il], Style(c)));
    return Status::ok();
  }
  static Status layer(Fwd& f, int il) { return prenorm_block(f, il, Style(f.cfg)); }
};

// ArchOps::configure / ::bind / ::layer of a Mamba-only stack (mamba, mamba2):
// every layer is h += mamba(RMSNorm(h) · attn_norm), Mamba1 or (kMamba2)
// Mamba2; no attention, no FFN.
template <bool kMamba2>
struct SsmOnlyArch {
  static Status configure(const gguf::File& f, ModelConfig& c) {
    TANDEM_TRY(require_ssm(f, c, /*mamba2=*/kMamba2));
    for (int il = 0; il < c.n_layer; ++il) {
      c.mixer[il] = kMamba2 ? MixerKind::kMamba2 : MixerKind::kMamba1;
      c.ffn[il] = FfnKind::kNone;
      c.n_head[il] = c.n_head_kv[il] = c.n_ff[il] = 0;
    }
    // mamba2's attention.head_count holds the SSM head count: attention keys are ignored.
    if constexpr (kMamba2) c.head_dim_k = c.head_dim_v = 0;
    return Status::ok();
  }
  static Status bind(Binder& b, const ModelConfig& c, Weights& w) {
    for (int il = 0; il < c.n_layer; ++il) {
      LayerWeights& lw = w.layers[il];
      TANDEM_TRY(bind_norm(b, c, blk(il, "attn_norm.weight"), &lw.attn_norm));
      // Mamba1: dt/B/C norm weights are optional (Falcon-Mamba files set
      // ssm.dt_b_c_rms and normalise without weights). Mamba2: ssm_norm required.
      TANDEM_TRY(kMamba2 ? bind_mamba2(b, c, il, lw, /*norm_optional=*/false)
                         : bind_mamba1(b, c, il, lw, /*bc_norms=*/false));
    }
    return Status::ok();
  }
  static Status layer(Fwd& f, int il) {
    const LayerWeights& lw = f.w.layers[il];
    return norm_mixer_residual(f, lw.attn_norm, [&](const float* x, float* out) {
      return kMamba2 ? mamba2_mixer(f, lw, il, x, out) : mamba1_mixer(f, lw, il, x, out);
    });
  }
};

}  // namespace tandem::model
