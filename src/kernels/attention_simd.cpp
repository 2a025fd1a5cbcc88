// SIMD attention kernels: the same online-softmax loop as the scalar twin
// (attention.cpp), with F16C/AVX-512 conversions and FMA for q·k and p·v.
// Internal linkage + target attributes only (no global -m flags).
#include "kernels/simd_target.h"  // first: target attributes, GCC 12 warning workaround
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/fp16.h"
#include "kernels/attention_internal.h"
#include "kernels/hsum.h"

namespace tandem::kernels {
namespace {

#define TGT2 TANDEM_TARGET_AVX2
#define TGT5 TANDEM_TARGET_AVX512

// ---- AVX2: 8 lanes, scalar tail
template <bool kF16>
TGT2 inline float dot2(const float* q, const void* k, int n) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 kv = kF16 ? _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(k) + i)))
                           : _mm256_loadu_ps(static_cast<const float*>(k) + i);
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), kv, acc);
  }
  float s = hsum8_ps(acc);
  for (; i < n; ++i) s += q[i] * (kF16 ? _cvtsh_ss(static_cast<const uint16_t*>(k)[i]) : static_cast<const float*>(k)[i]);
  return s;
}

template <bool kF16>
TGT2 inline void axpy2(float* acc, float p, const void* v, int n) {
  const __m256 pv = _mm256_set1_ps(p);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 vv = kF16 ? _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(v) + i)))
                           : _mm256_loadu_ps(static_cast<const float*>(v) + i);
    __m256 r = _mm256_fmadd_ps(pv, vv, _mm256_loadu_ps(acc + i));
    if constexpr (kF16) r = _mm256_cvtph_ps(_mm256_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm256_storeu_ps(acc + i, r);
  }
  for (; i < n; ++i) {
    if constexpr (kF16) acc[i] = _cvtsh_ss(_cvtss_sh(std::fma(_cvtsh_ss(static_cast<const uint16_t*>(v)[i]), p, acc[i]), 0));
    else acc[i] += p * static_cast<const float*>(v)[i];
  }
}

// ---- AVX-512: 16 lanes, masked tail
template <bool kF16>
TGT5 inline __m512 load16(const void* p, int i, __mmask16 m) {
  if constexpr (kF16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i));
  else return _mm512_maskz_loadu_ps(m, static_cast<const float*>(p) + i);
}

template <bool kF16>
TGT5 inline float dot5(const float* q, const void* k, int n) {
  __m512 acc = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), load16<kF16>(k, i, m), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

template <bool kF16>
TGT5 inline void axpy5(float* acc, float p, const void* v, int n) {
  const __m512 pv = _mm512_set1_ps(p);
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1);
    __m512 r = _mm512_fmadd_ps(pv, load16<kF16>(v, i, m), _mm512_maskz_loadu_ps(m, acc + i));
    if constexpr (kF16) r = _mm512_cvtph_ps(_mm512_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm512_mask_storeu_ps(acc + i, m, r);
  }
}

// The loop of attention_rows_scalar with the vector helpers plugged in.
#define TANDEM_ATTENTION_ROWS(NAME, TGT, DOT, AXPY)                                                     \
  template <bool kF16>                                                                                  \
  TGT void NAME##_t(const AttentionArgs& a, int64_t i0, int64_t i1) {                                   \
    const int dk = a.head_dim_k, dv = a.head_dim_v, group = a.n_head / a.n_kv_head;                     \
    thread_local std::vector<float> q, acc;                                                             \
    q.resize(static_cast<size_t>(dk));                                                                  \
    acc.resize(static_cast<size_t>(dv));                                                                \
    const char* kbase = static_cast<const char*>(a.k);                                                  \
    const char* vbase = static_cast<const char*>(a.v);                                                  \
    const size_t esz = kF16 ? 2 : 4;                                                                    \
    for (int64_t item = i0; item < i1; ++item) {                                                        \
      const int t = static_cast<int>(item / a.n_head), h = static_cast<int>(item % a.n_head);           \
      const int kvh = h / group;                                                                        \
      const float* qs = a.q + (static_cast<size_t>(t) * a.n_head + h) * dk;                             \
      for (int i = 0; i < dk; ++i) q[i] = kF16 ? _cvtsh_ss(_cvtss_sh(qs[i], 0)) : qs[i];                \
      std::fill(acc.begin(), acc.end(), 0.0f);                                                          \
      float m = -INFINITY, l = 0.0f;                                                                    \
      const float* mask = a.mask ? a.mask + static_cast<size_t>(t) * a.n_kv : nullptr;                  \
      for (int c = 0; c < a.n_kv; ++c) {                                                                \
        const float mv = mask ? mask[c] : 0.0f;                                                         \
        if (mv == -INFINITY) continue;                                                                  \
        const void* kc = kbase + static_cast<size_t>(c) * a.k_row_bytes + static_cast<size_t>(kvh) * dk * esz; \
        const float s = DOT<kF16>(q.data(), kc, dk) * a.scale + mv;                                     \
        float p;                                                                                        \
        if (s > m) {                                                                                    \
          const float r = std::exp(m - s);                                                              \
          for (int i = 0; i < dv; ++i) acc[i] = kF16 ? _cvtsh_ss(_cvtss_sh(acc[i] * r, 0)) : acc[i] * r;   \
          l *= r;                                                                                       \
          m = s;                                                                                        \
          p = 1.0f;                                                                                     \
        } else {                                                                                        \
          p = std::exp(s - m);                                                                          \
        }                                                                                               \
        l += p;                                                                                         \
        AXPY<kF16>(acc.data(), p, vbase + static_cast<size_t>(c) * a.v_row_bytes + static_cast<size_t>(kvh) * dv * esz, dv); \
      }                                                                                                 \
      float* out = a.out + (static_cast<size_t>(t) * a.n_head + h) * dv;                                \
      const float inv = l > 0 ? 1.0f / l : 0.0f;                                                        \
      for (int i = 0; i < dv; ++i) out[i] = acc[i] * inv;                                               \
    }                                                                                                   \
  }                                                                                                     \
  TGT void NAME(const AttentionArgs& a, int64_t i0, int64_t i1) {                                       \
    if (a.kv_type == DType::F16) NAME##_t<true>(a, i0, i1);                                             \
    else NAME##_t<false>(a, i0, i1);                                                                    \
  }

TANDEM_ATTENTION_ROWS(rows_avx2, TGT2, dot2, axpy2)
TANDEM_ATTENTION_ROWS(rows_avx512, TGT5, dot5, axpy5)

}  // namespace

AttentionRowsFn attention_rows_avx2() { return rows_avx2; }
AttentionRowsFn attention_rows_avx512() { return rows_avx512; }

}  // namespace tandem::kernels
