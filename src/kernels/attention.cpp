// Grouped-query attention with an online softmax (one pass over the cells,
// no n_tokens x n_kv score matrix). Work items are (token, head) pairs.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/profiler.h"
#include "core/fp16.h"
#include "kernels/attention_internal.h"
#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/thread_pool.h"

namespace tandem::kernels {
namespace {
inline float round_f16(float x) { return fp16_to_f32(f32_to_fp16(x)); }
}  // namespace

void attention_rows_scalar(const AttentionArgs& a, int64_t i0, int64_t i1) {
  const int dk = a.head_dim_k, dv = a.head_dim_v;
  const int group = a.n_head / a.n_kv_head;
  const bool f16 = a.kv_type == DType::F16;
  std::vector<float> q(static_cast<size_t>(dk)), acc(static_cast<size_t>(dv));
  const char* kbase = static_cast<const char*>(a.k);
  const char* vbase = static_cast<const char*>(a.v);
  for (int64_t item = i0; item < i1; ++item) {
    const int t = static_cast<int>(item / a.n_head), h = static_cast<int>(item % a.n_head);
    const int kvh = h / group;
    const float* qs = a.q + (static_cast<size_t>(t) * a.n_head + h) * dk;
    // The reference rounds Q to the K cache type before the dot product.
    for (int i = 0; i < dk; ++i) q[i] = f16 ? fp16_to_f32(f32_to_fp16(qs[i])) : qs[i];
    std::fill(acc.begin(), acc.end(), 0.0f);
    float m = -INFINITY, l = 0.0f;
    const float* mask = a.mask ? a.mask + static_cast<size_t>(t) * a.n_kv : nullptr;
    for (int c = 0; c < a.n_kv; ++c) {
      const float mv = mask ? mask[c] : 0.0f;
      if (mv == -INFINITY) continue;
      const char* kc = kbase + static_cast<size_t>(c) * a.k_row_bytes;
      float s = 0;
      if (f16) {
        const uint16_t* k = reinterpret_cast<const uint16_t*>(kc) + static_cast<size_t>(kvh) * dk;
        for (int i = 0; i < dk; ++i) s += q[i] * fp16_to_f32(k[i]);
      } else {
        const float* k = reinterpret_cast<const float*>(kc) + static_cast<size_t>(kvh) * dk;
        for (int i = 0; i < dk; ++i) s += q[i] * k[i];
      }
      s = s * a.scale + mv;
      // F16 cache: the V accumulator is kept in F16 precision (rounded after
      // every update, fused multiply-add), as the reference engine's CPU flash
      // attention does; parity with its outputs depends on it.
      float p;
      if (s > m) {
        const float r = std::exp(m - s);  // 0 when m == -inf
        for (int i = 0; i < dv; ++i) acc[i] = f16 ? round_f16(acc[i] * r) : acc[i] * r;
        l *= r;
        m = s;
        p = 1.0f;
      } else {
        p = std::exp(s - m);
      }
      l += p;
      const char* vc = vbase + static_cast<size_t>(c) * a.v_row_bytes;
      if (f16) {
        const uint16_t* v = reinterpret_cast<const uint16_t*>(vc) + static_cast<size_t>(kvh) * dv;
        for (int i = 0; i < dv; ++i) acc[i] = round_f16(std::fma(fp16_to_f32(v[i]), p, acc[i]));
      } else {
        const float* v = reinterpret_cast<const float*>(vc) + static_cast<size_t>(kvh) * dv;
        for (int i = 0; i < dv; ++i) acc[i] += p * v[i];
      }
    }
    float* out = a.out + (static_cast<size_t>(t) * a.n_head + h) * dv;
    const float inv = l > 0 ? 1.0f / l : 0.0f;  // nothing visible: zeros
    for (int i = 0; i < dv; ++i) out[i] = acc[i] * inv;
  }
}

void attention(const AttentionArgs& a, ThreadPool& pool) {
  TANDEM_PROF_OP(kAttention);  // bench --profile (core/profiler.h)
  if (a.n_tokens <= 0 || a.n_head <= 0) return;
  AttentionRowsFn fn = attention_rows_scalar;
  const CpuPath p = active_cpu_path();
  if (p == CpuPath::kAvx512 && attention_rows_avx512()) fn = attention_rows_avx512();
  else if (p >= CpuPath::kAvx2 && attention_rows_avx2()) fn = attention_rows_avx2();
  const int64_t n = static_cast<int64_t>(a.n_tokens) * a.n_head;
  pool.parallel_for(n, [&](int64_t i0, int64_t i1, int) { fn(a, i0, i1); });
}

}  // namespace tandem::kernels
