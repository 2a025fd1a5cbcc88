// Grouped-query attention over the hybrid memory's KV view.
#include <cstring>

#include "core/profiler.h"
#include "model/layers/layers.h"

namespace tandem::model {
namespace {

// Stores n f32 values as the cache's element type.
void store_row(DType type, const float* src, void* dst, int n) {
  if (type == DType::F32) {
    std::memcpy(dst, src, sizeof(float) * n);
  } else {
    kernels::quantize_row(DType::F16, src, dst, n);
  }
}

}  // namespace

Status attention_mixer(Fwd& f, const LayerWeights& lw, int il, const float* x, float* out, bool rope) {
  TANDEM_PROF_SECTION(kAttention);  // bench --profile: matmul time by layer part
  const ModelConfig& c = f.cfg;
  const int T = f.T;
  const int nh = c.n_head[il], nkv = c.n_head_kv[il], dk = c.head_dim_k, dv = c.head_dim_v;
  float* q = f.s.q.as<float>();      // [T][nh][dk]
  float* k = f.s.k.as<float>();      // [T][nkv][dk]
  float* v = f.s.v.as<float>();      // [T][nkv][dv]
  float* att = f.s.att.as<float>();  // [T][nh][dv]

  memory::KvView kv = f.mem.kv(il);
  if ((kv.type != DType::F16 && kv.type != DType::F32) || !kv.k || !kv.v || !kv.dst_cells || !kv.mask ||
      kv.n_kv <= 0) {
    return TANDEM_ERR(kInternal, "layer {}: the memory handed out an incomplete KV view", il);
  }
  const size_t esz = kv.type == DType::F32 ? 4 : 2;
  if (kv.k_row_bytes < esz * nkv * dk || kv.v_row_bytes < esz * nkv * dv) {
    return TANDEM_ERR(kInternal, "layer {}: KV view rows ({} / {} bytes) smaller than {} heads x {}/{} dims", il,
                      kv.k_row_bytes, kv.v_row_bytes, nkv, dk, dv);
  }

  linear(f, lw.wq, lw.bq, x, q);
  linear(f, lw.wk, lw.bk, x, k);
  linear(f, lw.wv, lw.bv, x, v);
  if (rope) {
    for (int t = 0; t < T; ++t) {
      kernels::rope(q + static_cast<size_t>(t) * nh * dk, nh, dk, f.ub.pos[t], c.rope);
      kernels::rope(k + static_cast<size_t>(t) * nkv * dk, nkv, dk, f.ub.pos[t], c.rope);
    }
  }
  // K/V of this micro-batch go into their cells before attending: the mask
  // lets each token see itself and its sequence's earlier cells.
  for (int t = 0; t < T; ++t) {
    const int32_t cell = kv.dst_cells[t];
    if (cell < 0) return TANDEM_ERR(kInternal, "layer {}: negative destination cell for row {}", il, t);
    store_row(kv.type, k + static_cast<size_t>(t) * nkv * dk,
              static_cast<uint8_t*>(kv.k) + static_cast<size_t>(cell) * kv.k_row_bytes, nkv * dk);
    store_row(kv.type, v + static_cast<size_t>(t) * nkv * dv,
              static_cast<uint8_t*>(kv.v) + static_cast<size_t>(cell) * kv.v_row_bytes, nkv * dv);
  }

  kernels::AttentionArgs a;
  a.q = q;
  a.n_tokens = T;
  a.n_head = nh;
  a.n_kv_head = nkv;
  a.head_dim_k = dk;
  a.head_dim_v = dv;
  a.kv_type = kv.type;
  a.k = kv.k;
  a.v = kv.v;
  a.k_row_bytes = kv.k_row_bytes;
  a.v_row_bytes = kv.v_row_bytes;
  a.n_kv = kv.n_kv;
  a.mask = kv.mask;
  a.scale = c.attn_scale;
  a.out = att;
  kernels::attention(a, f.pool);

  linear(f, lw.wo, lw.bo, att, out);
  return Status::ok();
}

}  // namespace tandem::model
