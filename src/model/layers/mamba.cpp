// Mamba1 and Mamba2 mixers over the memory's recurrent state view.
// Rows are sequence-major (token t of stream s is row s*n_seq_tokens + t) and
// stream s updates state.conv[s] in place and reads state.ssm_src[s] to write
// state.ssm[s] (the same pointer unless the memory double-buffers the state).
#include <cstring>

#include "core/profiler.h"
#include "kernels/act_fast.h"
#include "model/layers/layers.h"

namespace tandem::model {
namespace {

Status check_state(const Fwd& f, const memory::StateView& sv, int il) {
  if (sv.n_seqs != f.ub.n_seqs || !sv.conv || !sv.ssm) {
    return TANDEM_ERR(kInternal, "layer {}: state view has {} streams, micro-batch has {}", il, sv.n_seqs,
                      f.ub.n_seqs);
  }
  for (int s = 0; s < sv.n_seqs; ++s) {
    if (!sv.conv[s] || !sv.ssm[s]) return TANDEM_ERR(kInternal, "layer {}: null state for stream {}", il, s);
  }
  return Status::ok();
}

}  // namespace

Status mamba1_mixer(Fwd& f, const LayerWeights& lw, int il, const float* x, float* out) {
  TANDEM_PROF_SECTION(kRecurrent);  // bench --profile: matmul time by layer part
  float* xz = f.s.proj.as<float>();  // [T][2*DI]: x | z
  float* y = f.s.y.as<float>();      // [T][DI]
  kernels::matmul(lw.ssm_in, x, f.T, xz, f.pool);
  TANDEM_TRY(mamba1_core(f, lw, il, xz, y));
  kernels::matmul(lw.ssm_out, y, f.T, out, f.pool);
  return Status::ok();
}

Status mamba1_core(Fwd& f, const LayerWeights& lw, int il, const float* xz, float* y) {
  TANDEM_PROF_SECTION(kRecurrent);  // bench --profile: matmul time by layer part
  const ModelConfig& c = f.cfg;
  const int T = f.T, DI = c.ssm_d_inner, N = c.ssm_d_state, R = c.ssm_dt_rank;
  const int XDB = R + 2 * N;
  memory::StateView sv = f.mem.state(il);
  TANDEM_TRY(check_state(f, sv, il));

  float* xc = f.s.conv.as<float>();    // [T][DI] conv + SiLU output
  float* xdb = f.s.xdb.as<float>();    // [T][R + 2N]: dt | B | C
  float* dtin = f.s.dtin.as<float>();  // [T][R] (dt part, contiguous for the matmul)
  float* dt = f.s.dt.as<float>();      // [T][DI]

  kernels::ConvArgs ca;
  ca.x = xz;
  ca.x_stride = static_cast<size_t>(2) * DI;
  ca.n_seqs = f.ub.n_seqs;
  ca.n_seq_tokens = f.ub.n_seq_tokens;
  ca.channels = DI;
  ca.width = c.ssm_d_conv;
  ca.state = sv.conv;
  ca.w = lw.ssm_conv1d.data;
  ca.bias = lw.ssm_conv1d_b.data;
  ca.silu = true;
  ca.out = xc;
  kernels::ssm_conv(ca, f.pool);

  kernels::matmul(lw.ssm_x, xc, T, xdb, f.pool);
  // Jamba binds norm weights; Falcon-Mamba (ssm.dt_b_c_rms) normalises without weights.
  const bool bc_norms = static_cast<bool>(lw.ssm_dt_norm) || c.ssm_dt_b_c_rms;
  for (int t = 0; t < T; ++t) {
    float* r = xdb + static_cast<size_t>(t) * XDB;
    if (bc_norms) {
      kernels::rms_norm(r, lw.ssm_dt_norm.data, r, R, c.norm_eps);
      kernels::rms_norm(r + R, lw.ssm_b_norm.data, r + R, N, c.norm_eps);
      kernels::rms_norm(r + R + N, lw.ssm_c_norm.data, r + R + N, N, c.norm_eps);
    }
    std::memcpy(dtin + static_cast<size_t>(t) * R, r, sizeof(float) * R);
  }
  kernels::matmul(lw.ssm_dt, dtin, T, dt, f.pool);  // [T][DI]; bias added inside the scan

  kernels::Mamba1ScanArgs sa;
  sa.n_seqs = f.ub.n_seqs;
  sa.n_seq_tokens = f.ub.n_seq_tokens;
  sa.d_inner = DI;
  sa.d_state = N;
  sa.x = xc;
  sa.x_stride = DI;
  sa.dt = dt;
  sa.dt_stride = DI;
  sa.dt_bias = lw.ssm_dt_b.data;
  sa.A = lw.ssm_a.data;
  sa.B = xdb + R;
  sa.B_stride = XDB;
  sa.C = xdb + R + N;
  sa.C_stride = XDB;
  sa.D = lw.ssm_d.data;
  sa.state = sv.ssm;
  sa.state_in = sv.ssm_src;  // the old state: a double-buffered step leaves it untouched
  sa.y = y;
  sa.y_stride = DI;
  kernels::ssm_scan_mamba1(sa, f.pool);

  for (int t = 0; t < T; ++t) {  // y = y * silu(z)
    float* yr = y + static_cast<size_t>(t) * DI;
    kernels::swiglu_fast(xz + static_cast<size_t>(t) * 2 * DI + DI, yr, yr, DI);
  }
  return Status::ok();
}

Status mamba2_mixer(Fwd& f, const LayerWeights& lw, int il, const float* x, float* out) {
  TANDEM_PROF_SECTION(kRecurrent);  // bench --profile: matmul time by layer part
  const ModelConfig& c = f.cfg;
  const int T = f.T, DI = c.ssm_d_inner, N = c.ssm_d_state, H = c.ssm_dt_rank, G = c.ssm_n_group;
  const int CH = DI + 2 * G * N;   // conv channels: x | B | C
  const int DP = DI + CH + H;      // in_proj rows: z | xBC | dt
  memory::StateView sv = f.mem.state(il);
  TANDEM_TRY(check_state(f, sv, il));

  float* zxbcdt = f.s.proj.as<float>();  // [T][DP]
  float* xbc = f.s.conv.as<float>();     // [T][CH] after conv + SiLU
  float* y = f.s.y.as<float>();          // [T][DI]

  kernels::matmul(lw.ssm_in, x, T, zxbcdt, f.pool);

  kernels::ConvArgs ca;
  ca.x = zxbcdt + DI;
  ca.x_stride = DP;
  ca.n_seqs = f.ub.n_seqs;
  ca.n_seq_tokens = f.ub.n_seq_tokens;
  ca.channels = CH;
  ca.width = c.ssm_d_conv;
  ca.state = sv.conv;
  ca.w = lw.ssm_conv1d.data;
  ca.bias = lw.ssm_conv1d_b.data;
  ca.silu = true;
  ca.out = xbc;
  kernels::ssm_conv(ca, f.pool);

  kernels::Mamba2ScanArgs sa;
  sa.n_seqs = f.ub.n_seqs;
  sa.n_seq_tokens = f.ub.n_seq_tokens;
  sa.n_head = H;
  sa.head_dim = DI / H;
  sa.n_group = G;
  sa.d_state = N;
  sa.x = xbc;
  sa.x_stride = CH;
  sa.dt = zxbcdt + DI + CH;
  sa.dt_stride = DP;
  sa.dt_bias = lw.ssm_dt_b.data;
  sa.A = lw.ssm_a.data;
  sa.B = xbc + DI;
  sa.B_stride = CH;
  sa.C = xbc + DI + G * N;
  sa.C_stride = CH;
  sa.D = lw.ssm_d.data;
  sa.state = sv.ssm;
  sa.state_in = sv.ssm_src;  // the old state: a double-buffered step leaves it untouched
  sa.y = y;
  sa.y_stride = DI;
  kernels::ssm_scan_mamba2(sa, f.pool);

  for (int t = 0; t < T; ++t) {
    float* yr = y + static_cast<size_t>(t) * DI;
    kernels::swiglu_fast(zxbcdt + static_cast<size_t>(t) * DP, yr, yr, DI);  // gate first: y * silu(z)
    if (lw.ssm_norm) kernels::group_rms_norm(yr, lw.ssm_norm.data, yr, DI, DI / G, c.norm_eps);
  }
  kernels::matmul(lw.ssm_out, y, T, out, f.pool);
  return Status::ok();
}

}  // namespace tandem::model
