// Binding helpers for the tensor groups the layer builders use.
#include "model/layers/bind.h"

namespace tandem::model {

Status bind_norm(Binder& b, const ModelConfig& c, const std::string& name, Vec* out) {
  return b.vec(name, {c.n_embd}, true, out);
}

Status bind_attention(Binder& b, const ModelConfig& c, int il, LayerWeights& lw) {
  const int64_t E = c.n_embd;
  const int64_t nq = int64_t{c.n_head[il]} * c.head_dim_k;
  const int64_t nk = int64_t{c.n_head_kv[il]} * c.head_dim_k;
  const int64_t nv = int64_t{c.n_head_kv[il]} * c.head_dim_v;
  const int64_t no = int64_t{c.n_head[il]} * c.head_dim_v;
  TANDEM_TRY(b.matrix(blk(il, "attn_q.weight"), E, nq, true, &lw.wq));
  TANDEM_TRY(b.matrix(blk(il, "attn_k.weight"), E, nk, true, &lw.wk));
  TANDEM_TRY(b.matrix(blk(il, "attn_v.weight"), E, nv, true, &lw.wv));
  TANDEM_TRY(b.matrix(blk(il, "attn_output.weight"), no, E, true, &lw.wo));
  TANDEM_TRY(b.vec(blk(il, "attn_q.bias"), {nq}, false, &lw.bq));
  TANDEM_TRY(b.vec(blk(il, "attn_k.bias"), {nk}, false, &lw.bk));
  TANDEM_TRY(b.vec(blk(il, "attn_v.bias"), {nv}, false, &lw.bv));
  TANDEM_TRY(b.vec(blk(il, "attn_output.bias"), {E}, false, &lw.bo));
  return Status::ok();
}

Status bind_mamba1(Binder& b, const ModelConfig& c, int il, LayerWeights& lw, bool bc_norms) {
  const int64_t E = c.n_embd, DI = c.ssm_d_inner, N = c.ssm_d_state, R = c.ssm_dt_rank, K = c.ssm_d_conv;
  TANDEM_TRY(b.matrix(blk(il, "ssm_in.weight"), E, 2 * DI, true, &lw.ssm_in));
  TANDEM_TRY(b.vec(blk(il, "ssm_conv1d.weight"), {K, DI}, true, &lw.ssm_conv1d));
  TANDEM_TRY(b.vec(blk(il, "ssm_conv1d.bias"), {DI}, false, &lw.ssm_conv1d_b));
  TANDEM_TRY(b.matrix(blk(il, "ssm_x.weight"), DI, R + 2 * N, true, &lw.ssm_x));
  TANDEM_TRY(b.matrix(blk(il, "ssm_dt.weight"), R, DI, true, &lw.ssm_dt));
  TANDEM_TRY(b.vec(blk(il, "ssm_dt.bias"), {DI}, false, &lw.ssm_dt_b));
  TANDEM_TRY(b.vec(blk(il, "ssm_a"), {N, DI}, true, &lw.ssm_a));
  TANDEM_TRY(b.vec(blk(il, "ssm_d"), {DI}, true, &lw.ssm_d));
  TANDEM_TRY(b.matrix(blk(il, "ssm_out.weight"), DI, E, true, &lw.ssm_out));
  TANDEM_TRY(b.vec(blk(il, "ssm_dt_norm.weight"), {R}, bc_norms, &lw.ssm_dt_norm));
  TANDEM_TRY(b.vec(blk(il, "ssm_b_norm.weight"), {N}, bc_norms, &lw.ssm_b_norm));
  TANDEM_TRY(b.vec(blk(il, "ssm_c_norm.weight"), {N}, bc_norms, &lw.ssm_c_norm));
  return Status::ok();
}

Status bind_mamba2(Binder& b, const ModelConfig& c, int il, LayerWeights& lw, bool norm_optional) {
  const int64_t E = c.n_embd, DI = c.ssm_d_inner, N = c.ssm_d_state, H = c.ssm_dt_rank, G = c.ssm_n_group,
                K = c.ssm_d_conv;
  const int64_t CH = DI + 2 * G * N;
  const int64_t d_in_proj = DI + CH + H;
  TANDEM_TRY(b.matrix(blk(il, "ssm_in.weight"), E, d_in_proj, true, &lw.ssm_in));
  TANDEM_TRY(b.vec(blk(il, "ssm_conv1d.weight"), {K, CH}, true, &lw.ssm_conv1d));
  TANDEM_TRY(b.vec(blk(il, "ssm_conv1d.bias"), {CH}, false, &lw.ssm_conv1d_b));
  TANDEM_TRY(b.vec(blk(il, "ssm_dt.bias"), {H}, true, &lw.ssm_dt_b));
  TANDEM_TRY(b.vec(blk(il, "ssm_a"), {1, H}, true, &lw.ssm_a));
  TANDEM_TRY(b.vec(blk(il, "ssm_d"), {1, H}, true, &lw.ssm_d));
  // Stored as {d_inner/G, G}; files with G == 1 may also store it as {d_inner}.
  TANDEM_TRY(b.vec(blk(il, "ssm_norm.weight"), {DI / G, G}, !norm_optional, &lw.ssm_norm));
  TANDEM_TRY(b.matrix(blk(il, "ssm_out.weight"), DI, E, true, &lw.ssm_out));
  return Status::ok();
}

Status bind_swiglu(Binder& b, const ModelConfig& c, int il, LayerWeights& lw) {
  const int64_t E = c.n_embd, F = c.n_ff[il];
  if (F <= 0) {
    return TANDEM_ERR(kCorrupt, "layer {} has a feed-forward block but feed_forward_length is {}", il, F);
  }
  TANDEM_TRY(b.matrix(blk(il, "ffn_gate.weight"), E, F, true, &lw.ffn_gate));
  TANDEM_TRY(b.matrix(blk(il, "ffn_up.weight"), E, F, true, &lw.ffn_up));
  TANDEM_TRY(b.matrix(blk(il, "ffn_down.weight"), F, E, true, &lw.ffn_down));
  TANDEM_TRY(b.vec(blk(il, "ffn_gate.bias"), {F}, false, &lw.ffn_gate_b));
  TANDEM_TRY(b.vec(blk(il, "ffn_up.bias"), {F}, false, &lw.ffn_up_b));
  TANDEM_TRY(b.vec(blk(il, "ffn_down.bias"), {E}, false, &lw.ffn_down_b));
  return Status::ok();
}

Status bind_relu2(Binder& b, const ModelConfig& c, int il, LayerWeights& lw) {
  const int64_t E = c.n_embd, F = c.n_ff[il];
  if (F <= 0) {
    return TANDEM_ERR(kCorrupt, "layer {} has an MLP but feed_forward_length is {}", il, F);
  }
  TANDEM_TRY(b.matrix(blk(il, "ffn_up.weight"), E, F, true, &lw.ffn_up));
  TANDEM_TRY(b.matrix(blk(il, "ffn_down.weight"), F, E, true, &lw.ffn_down));
  TANDEM_TRY(b.vec(blk(il, "ffn_up.bias"), {F}, false, &lw.ffn_up_b));
  TANDEM_TRY(b.vec(blk(il, "ffn_down.bias"), {E}, false, &lw.ffn_down_b));
  return Status::ok();
}

Status bind_moe(Binder& b, const ModelConfig& c, int il, LayerWeights& lw) {
  const int64_t E = c.n_embd, F = c.n_ff[il], X = c.n_expert;
  if (X <= 0) return TANDEM_ERR(kCorrupt, "layer {} has experts but expert_count is {}", il, X);
  if (F <= 0) return TANDEM_ERR(kCorrupt, "layer {} has experts but feed_forward_length is {}", il, F);
  TANDEM_TRY(b.matrix(blk(il, "ffn_gate_inp.weight"), E, X, true, &lw.ffn_gate_inp));
  TANDEM_TRY(b.experts(blk(il, "ffn_gate_exps.weight"), E, F, X, true, &lw.gate_exps));
  TANDEM_TRY(b.experts(blk(il, "ffn_up_exps.weight"), E, F, X, true, &lw.up_exps));
  TANDEM_TRY(b.experts(blk(il, "ffn_down_exps.weight"), F, E, X, true, &lw.down_exps));
  if (c.n_ff_shexp > 0) {
    const int64_t S = c.n_ff_shexp;
    TANDEM_TRY(b.matrix(blk(il, "ffn_gate_shexp.weight"), E, S, true, &lw.ffn_gate_shexp));
    TANDEM_TRY(b.matrix(blk(il, "ffn_up_shexp.weight"), E, S, true, &lw.ffn_up_shexp));
    TANDEM_TRY(b.matrix(blk(il, "ffn_down_shexp.weight"), S, E, true, &lw.ffn_down_shexp));
  }
  return Status::ok();
}

}  // namespace tandem::model
