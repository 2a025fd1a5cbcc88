// act_fast.h: AVX-512 and AVX2 SiLU-gated products with a polynomial exp.
#include "kernels/simd_target.h"  // first: target attributes, GCC 12 warning workaround
#include "core/env.h"
#include "kernels/act_fast.h"

#include <immintrin.h>

#include <cmath>
#include <cstdlib>

#include "kernels/cpu.h"
#include "kernels/kernels.h"

namespace tandem::kernels {
namespace {

// exp(x) = 2^n * e^r, n = round(x / ln2), r = x - n ln2 (ln2 split in a high
// part exact in float and a low correction), e^r by its Taylor polynomial
// to degree 7 (|r| <= ln2/2: truncation error < 1e-9 relative).
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
constexpr float kC2 = 1.0f / 2, kC3 = 1.0f / 6, kC4 = 1.0f / 24, kC5 = 1.0f / 120, kC6 = 1.0f / 720,
                kC7 = 1.0f / 5040;
// AVX-512: scalef takes any n, so the clamp only keeps n in int range and
// overflow/underflow come out as inf / 0 like std::exp. AVX2 builds 2^n from
// exponent bits, so n must stay in [-126, 127]: clamped to [-87, 88.3], and
// inputs above ln(FLT_MAX) give +inf explicitly. (Below -87 the true result
// is a denormal; silu adds it to 1, so it does not matter there.)
constexpr float kMaxX512 = 100.0f, kMinX512 = -104.0f;
constexpr float kMaxX = 88.3f, kMinX = -87.0f, kOverflowX = 88.7228390f;

#define TGT512 TANDEM_TARGET_AVX512
#define TGT256 TANDEM_TARGET_AVX2

TGT512 inline __m512 exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(kMinX512)), _mm512_set1_ps(kMaxX512));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kC7);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC5));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

TGT512 inline __m512 silu512(__m512 g) {
  const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
  return _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

TGT512 void swiglu512(const float* gate, const float* up, float* out, int n) {
  int i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_mul_ps(silu512(_mm512_loadu_ps(gate + i)), _mm512_loadu_ps(up + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i), u = _mm512_maskz_loadu_ps(m, up + i);
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(silu512(g), u));
  }
}

TGT512 void silu512_rows(float* x, int n) {
  int i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, silu512(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(x + i, m, silu512(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

TGT256 inline __m256 exp256(__m256 x0) {
  const __m256 x = _mm256_min_ps(_mm256_max_ps(x0, _mm256_set1_ps(kMinX)), _mm256_set1_ps(kMaxX));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kC7);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC5));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  // 2^n for n in [-126, 127] (guaranteed by the clamp): exponent bits (n + 127) << 23
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 v = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  return _mm256_blendv_ps(v, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x0, _mm256_set1_ps(kOverflowX), _CMP_GT_OQ));
}

TGT256 inline __m256 silu256(__m256 g) {
  const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

TGT256 void swiglu256(const float* gate, const float* up, float* out, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu256(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
  if (i < n) swiglu(gate + i, up + i, out + i, n - i);
}

TGT256 void silu256_rows(float* x, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, silu256(_mm256_loadu_ps(x + i)));
  if (i < n) silu(x + i, n - i);
}

#undef TGT512
#undef TGT256
}  // namespace

bool decode_fast_enabled() {
  static const bool on = env_switch_on("TANDEM_DECODE_FAST");
  return on;
}

void swiglu_fast(const float* gate, const float* up, float* out, int n) {
  switch (decode_fast_enabled() ? active_cpu_path() : CpuPath::kScalar) {
    case CpuPath::kAvx512: swiglu512(gate, up, out, n); return;
    case CpuPath::kAvx2: swiglu256(gate, up, out, n); return;
    default: swiglu(gate, up, out, n); return;
  }
}

void silu_fast(float* x, int n) {
  switch (decode_fast_enabled() ? active_cpu_path() : CpuPath::kScalar) {
    case CpuPath::kAvx512: silu512_rows(x, n); return;
    case CpuPath::kAvx2: silu256_rows(x, n); return;
    default: silu(x, n); return;
  }
}

}  // namespace tandem::kernels
