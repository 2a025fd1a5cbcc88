// falcon-h1: every layer runs attention (RoPE, NeoX pairing) and Mamba2 side by
// side on the same RMSNorm(h) (attn_norm); h += attn + ssm; then
// RMSNorm (blk.N.ffn_norm — no ".weight" suffix) → SwiGLU → residual.
// The checkpoint's µP multipliers are folded into the weights by the
// converter; the reference graph applies none of them at run time.
#include "model/arch/arch.h"
#include "model/config.h"
#include "model/layers/bind.h"
#include "model/layers/layers.h"

namespace tandem::model {
namespace {

Status configure(const gguf::File& f, ModelConfig& c) {
  TANDEM_TRY(require_ssm(f, c, /*mamba2=*/true));
  for (int il = 0; il < c.n_layer; ++il) {
    TANDEM_TRY(require_attention(f, c, il));
    c.mixer[il] = MixerKind::kAttnMamba2;
    c.ffn[il] = FfnKind::kSwiGLU;
  }
  c.use_rope = true;
  c.rope.style = kernels::RopeStyle::kNeox;
  return Status::ok();
}

Status bind(Binder& b, const ModelConfig& c, Weights& w) {
  for (int il = 0; il < c.n_layer; ++il) {
    LayerWeights& lw = w.layers[il];
    TANDEM_TRY(bind_norm(b, c, blk(il, "attn_norm.weight"), &lw.attn_norm));
    TANDEM_TRY(bind_attention(b, c, il, lw));
    TANDEM_TRY(bind_mamba2(b, c, il, lw, /*norm_optional=*/true));
    TANDEM_TRY(bind_norm(b, c, blk(il, "ffn_norm"), &lw.ffn_norm));
    TANDEM_TRY(bind_swiglu(b, c, il, lw));
  }
  return Status::ok();
}

Status layer(Fwd& f, int il) {
  const ModelConfig& c = f.cfg;
  const LayerWeights& lw = f.w.layers[il];
  const int E = c.n_embd;
  norm_rows(f.h(), lw.attn_norm, f.xn(), f.T, E, c.norm_eps);
  TANDEM_TRY(mamba2_mixer(f, lw, il, f.xn(), f.mix2()));
  TANDEM_TRY(attention_mixer(f, lw, il, f.xn(), f.mix(), /*rope=*/true));
  kernels::add(f.mix(), f.mix2(), f.mix(), f.T * E);  // attn + ssm, then the residual
  residual_add(f.h(), f.mix(), 1.0f, f.T, E);
  norm_rows(f.h(), lw.ffn_norm, f.xn(), f.T, E, c.norm_eps);
  ffn_swiglu(f, lw.ffn_gate, lw.ffn_gate_b, lw.ffn_up, lw.ffn_up_b, lw.ffn_down, lw.ffn_down_b, f.xn(), f.ffo());
  residual_add(f.h(), f.ffo(), 1.0f, f.T, E);
  return Status::ok();
}

}  // namespace

const ArchOps& falcon_h1_arch() {
  static const ArchOps ops{"falcon-h1", configure, bind, layer};
  return ops;
}

}  // namespace tandem::model
