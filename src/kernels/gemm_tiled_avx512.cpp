// AVX-512 tiled GEMM for prefill (see gemm_tiled.h for the scheme).
//
// Float types (F32/F16 weights, activations in the same type):
//   weight panel  wp[k][32]  f32 (F16 widened exactly)
//   column group  xp[k][12]  f32 (the activations as converted by matmul)
//   microkernel   32 rows x 12 columns = 24 zmm accumulators, per k:
//                 2 weight loads, 12 broadcasts, 24 FMAs.
// Quantized types (VNNI, u8 weights x s8 activations):
//   Every weight type is re-expressed per sub-block s of SB elements as
//     value = scale_s * (u_k - bias) - min_s        (u_k in 0..255, u8)
//   (Q8_0: u = q + 128; Q4_0/Q5_0: u = q; Q4_K/Q5_K: scale = d*sc, min = dmin*m;
//   Q6_K: SB = 16, scale = d*sc). The sub-block integer dot
//     sum_k (u_k - bias) a_k = sum_k u_k a_k - bias * sum_k a_k
//   starts from -bias*sum(a) (per column, from the activation block sums) and
//   accumulates vpdpbusd over groups of 4 elements; it is then scaled in f32:
//     acc += float(isum) * (scale_s * d_a)  [- min_s * (d_a * sum_s(a))]
//   The products scale*sc are exact in f32 (f16 mantissa x <= 8-bit integer),
//   so each sub-block term is the reference's up to one rounding.
//   weight panel  per sub-block: u8 [SB/4][32 rows][4], scale f32[32], min f32[32]
//   column group  per sub-block: a s8 [SB/4][6 cols][4], d_a f32[6], -bias*sum i32[6],
//                 d_a*sum f32[6]
//   microkernel   32 rows x 6 columns: 12 f32 + 12 i32 accumulators.
#include "kernels/simd_target.h"  // first: target attributes, GCC 12 warning workaround
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/env.h"
#include "core/fp16.h"
#include "kernels/gemm_tiled.h"
#include "kernels/quant_blocks.h"
#include "kernels/thread_pool.h"
#include "kernels/transpose16.h"

namespace tandem::kernels {
namespace tiled512 {
namespace {

#define TANDEM_TGT TANDEM_TARGET_AVX512

constexpr int kMR = kTiledRows;  // 32
constexpr int kNRf = 12;         // columns per float tile
constexpr int kNRq = 6;          // columns per int8 tile

// Buffers that live across calls (grow only). The activation pack is written
// by the pool before the panel loop and only read afterwards.
std::vector<unsigned char>& act_pack_buffer() {
  static thread_local std::vector<unsigned char> b;
  return b;
}
std::vector<unsigned char>& panel_buffer() {
  static thread_local std::vector<unsigned char> b;
  return b;
}

inline unsigned char* grow(std::vector<unsigned char>& b, size_t n) {
  if (b.size() < n + 64) b.resize(n + 64);
  // 64-byte aligned start inside the vector
  const uintptr_t p = reinterpret_cast<uintptr_t>(b.data());
  return b.data() + ((64 - (p & 63)) & 63);
}

// Masked store of 32 row results of one column (rows beyond nr are skipped).
TANDEM_TGT inline void store_col(float* y, __m512 lo, __m512 hi, int nr) {
  if (nr >= 32) {
    _mm512_storeu_ps(y, lo);
    _mm512_storeu_ps(y + 16, hi);
  } else {
    const __mmask16 m0 = nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1);
    const __mmask16 m1 = nr <= 16 ? __mmask16(0) : __mmask16((1u << (nr - 16)) - 1);
    _mm512_mask_storeu_ps(y, m0, lo);
    _mm512_mask_storeu_ps(y + 16, m1, hi);
  }
}

// =============================================================== float types

template <DType T>
inline float to_f32(const void* p, int64_t k) {
  if constexpr (T == DType::F32) return static_cast<const float*>(p)[k];
  else if constexpr (T == DType::F16) return fp16_to_f32(static_cast<const uint16_t*>(p)[k]);
  else return bf16_to_f32(static_cast<const uint16_t*>(p)[k]);
}

// 16 consecutive elements of a row as f32.
template <DType T>
TANDEM_TGT inline __m512 load16f(const void* p, int64_t k) {
  if constexpr (T == DType::F32) {
    return _mm512_loadu_ps(static_cast<const float*>(p) + k);
  } else if constexpr (T == DType::F16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + k)));
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + k));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

// Weight panel rows [r0, r0+32) into wp[k][32] f32; rows past w.rows are 0.
template <DType T>
TANDEM_TGT void pack_panel_f(const Matrix& w, int64_t r0, float* wp) {
  const int64_t K = w.cols;
  const int nr = static_cast<int>(std::min<int64_t>(kMR, w.rows - r0));
  const char* base = static_cast<const char*>(w.data);
  int64_t k = 0;
  for (; k + 16 <= K; k += 16)
    for (int h = 0; h < 2; ++h) {
      __m512 r[16];
      for (int i = 0; i < 16; ++i) {
        const int row = 16 * h + i;
        r[i] = row < nr ? load16f<T>(base + static_cast<size_t>(r0 + row) * w.row_stride, k) : _mm512_setzero_ps();
      }
      transpose16(r);
      for (int j = 0; j < 16; ++j) _mm512_store_ps(wp + (k + j) * kMR + 16 * h, r[j]);
    }
  for (; k < K; ++k)
    for (int i = 0; i < kMR; ++i)
      wp[k * kMR + i] = i < nr ? to_f32<T>(base + static_cast<size_t>(r0 + i) * w.row_stride, k) : 0.0f;
}

// The f32 activations rounded to the weight's dot format (F16: RNE, as
// quantize_act_row_scalar does), widened back to f32.
template <DType T>
inline float act_round(float v) {
  if constexpr (T == DType::F16) return fp16_to_f32(f32_to_fp16(v));
  else return v;
}
template <DType T>
TANDEM_TGT inline __m512 load16_act(const void* p, int64_t k) {
  const __m512 v = _mm512_loadu_ps(static_cast<const float*>(p) + k);
  if constexpr (T == DType::F16) return _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  else return v;
}

// Column group g: xp[k][12] f32 (columns past n_cols are 0). t.act: f32 rows.
template <DType T>
TANDEM_TGT void pack_cols_f(const GemmTask& t, int g, float* xp) {
  const int64_t K = t.w->cols;
  const int c0 = g * kNRf;
  const int nc = std::min(kNRf, t.n_cols - c0);
  const char* src[kNRf];
  for (int j = 0; j < nc; ++j) src[j] = static_cast<const char*>(t.act) + static_cast<size_t>(c0 + j) * t.act_row_bytes;
  int64_t k0 = 0;
  for (; k0 + 16 <= K; k0 += 16) {  // 16 k x 12 columns through one register transpose
    __m512 r[16];
    for (int j = 0; j < 16; ++j) r[j] = j < nc ? load16_act<T>(src[j], k0) : _mm512_setzero_ps();
    transpose16(r);
    for (int i = 0; i < 16; ++i) _mm512_mask_storeu_ps(xp + (k0 + i) * kNRf, 0x0FFF, r[i]);
  }
  for (int j = 0; j < kNRf; ++j) {
    const int c = c0 + j;
    if (c < t.n_cols) {
      const char* row = static_cast<const char*>(t.act) + static_cast<size_t>(c) * t.act_row_bytes;
      for (int64_t k = k0; k < K; ++k) xp[k * kNRf + j] = act_round<T>(reinterpret_cast<const float*>(row)[k]);
    } else {
      for (int64_t k = k0; k < K; ++k) xp[k * kNRf + j] = 0.0f;
    }
  }
}

// 32 rows x 12 columns over all K. y points at y[c0][r0]; ldy = w.rows.
TANDEM_TGT void kernel_f(const float* wp, const float* xp, int64_t K, float* y, size_t ldy, int nr, int nc) {
  __m512 a0[kNRf], a1[kNRf];
#pragma GCC unroll 12
  for (int j = 0; j < kNRf; ++j) a0[j] = a1[j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m512 w0 = _mm512_load_ps(wp + k * kMR), w1 = _mm512_load_ps(wp + k * kMR + 16);
    const float* x = xp + k * kNRf;
#pragma GCC unroll 12
    for (int j = 0; j < kNRf; ++j) {
      const __m512 b = _mm512_set1_ps(x[j]);
      a0[j] = _mm512_fmadd_ps(w0, b, a0[j]);
      a1[j] = _mm512_fmadd_ps(w1, b, a1[j]);
    }
  }
  for (int j = 0; j < nc; ++j) store_col(y + static_cast<size_t>(j) * ldy, a0[j], a1[j], nr);
}

template <DType T>
void run_f(const GemmTask& t, ThreadPool& pool) {
  const Matrix& w = *t.w;
  const int64_t K = w.cols;
  const int n_groups = (t.n_cols + kNRf - 1) / kNRf;
  const size_t group_floats = static_cast<size_t>(K) * kNRf;
  float* xp = reinterpret_cast<float*>(grow(act_pack_buffer(), group_floats * n_groups * sizeof(float)));
  pool.parallel_for(n_groups, [&](int64_t g0, int64_t g1, int) {
    for (int64_t g = g0; g < g1; ++g) pack_cols_f<T>(t, static_cast<int>(g), xp + g * group_floats);
  });
  const int64_t n_panels = (w.rows + kMR - 1) / kMR;
  pool.parallel_for(n_panels, [&](int64_t p0, int64_t p1, int) {
    float* wp = reinterpret_cast<float*>(grow(panel_buffer(), static_cast<size_t>(K) * kMR * sizeof(float)));
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t r0 = p * kMR;
      const int nr = static_cast<int>(std::min<int64_t>(kMR, w.rows - r0));
      pack_panel_f<T>(w, r0, wp);
      for (int g = 0; g < n_groups; ++g) {
        const int c0 = g * kNRf;
        kernel_f(wp, xp + g * group_floats, K, t.y + static_cast<size_t>(c0) * w.rows + r0, static_cast<size_t>(w.rows),
                 nr, std::min(kNRf, t.n_cols - c0));
      }
    }
  });
}

// ============================================================ quantized types

// Per weight type: sub-block length, bias of the u8 codes, whether a min term
// exists, the activation block type and the weight block (super-block) size.
template <DType W> struct QTraits;
template <> struct QTraits<DType::Q8_0> { static constexpr int SB = 32, QK = 32, bias = 128; static constexpr bool kMin = false, kQ8K = false; };
template <> struct QTraits<DType::Q4_0> { static constexpr int SB = 32, QK = 32, bias = 8; static constexpr bool kMin = false, kQ8K = false; };
template <> struct QTraits<DType::Q5_0> { static constexpr int SB = 32, QK = 32, bias = 16; static constexpr bool kMin = false, kQ8K = false; };
template <> struct QTraits<DType::Q4_K> { static constexpr int SB = 32, QK = 256, bias = 0; static constexpr bool kMin = true, kQ8K = true; };
template <> struct QTraits<DType::Q5_K> { static constexpr int SB = 32, QK = 256, bias = 0; static constexpr bool kMin = true, kQ8K = true; };
template <> struct QTraits<DType::Q6_K> { static constexpr int SB = 16, QK = 256, bias = 32; static constexpr bool kMin = false, kQ8K = true; };

// Hardware f16 -> f32 (exact, like fp16_to_f32, which costs a dozen scalar ops).
TANDEM_TGT inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// Decode one weight block (QK elements) into u8 codes in element order, and
// per sub-block scale (and min).
template <DType W>
TANDEM_TGT inline void decode_block(const void* blk, uint8_t* u, float* scale, float* mn) {
  if constexpr (W == DType::Q8_0) {
    const BlockQ8_0* x = static_cast<const BlockQ8_0*>(blk);
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x->qs));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(u), _mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80))));
    scale[0] = h2f(x->d);
  } else if constexpr (W == DType::Q4_0 || W == DType::Q5_0) {
    const uint8_t* qs;
    uint32_t qh = 0;
    if constexpr (W == DType::Q4_0) {
      const BlockQ4_0* x = static_cast<const BlockQ4_0*>(blk);
      qs = x->qs; scale[0] = h2f(x->d);
    } else {
      const BlockQ5_0* x = static_cast<const BlockQ5_0*>(blk);
      qs = x->qs; scale[0] = h2f(x->d);
      std::memcpy(&qh, x->qh, 4);
    }
    // element j < 16: low nibble of qs[j], element j + 16: its high nibble;
    // Q5_0 adds 16 where bit j of qh is set (one mask bit per element)
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
    if constexpr (W == DType::Q5_0) v = _mm256_or_si256(v, _mm256_maskz_mov_epi8(__mmask32(qh), _mm256_set1_epi8(16)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(u), v);
  } else if constexpr (W == DType::Q4_K || W == DType::Q5_K) {
    const uint8_t* qs;
    const uint8_t* sc;
    const uint8_t* qh = nullptr;
    float d, dmin;
    if constexpr (W == DType::Q4_K) {
      const BlockQ4_K* x = static_cast<const BlockQ4_K*>(blk);
      qs = x->qs; sc = x->scales; d = h2f(x->d); dmin = h2f(x->dmin);
    } else {
      const BlockQ5_K* x = static_cast<const BlockQ5_K*>(blk);
      qs = x->qs; sc = x->scales; qh = x->qh; d = h2f(x->d); dmin = h2f(x->dmin);
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i hb = qh ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh)) : _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {  // sub-blocks 2j (low nibbles) and 2j+1 (high nibbles)
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * j));
      __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if (qh) {
        const __m256i bl = _mm256_set1_epi8(static_cast<char>(1 << (2 * j)));
        const __m256i bh = _mm256_set1_epi8(static_cast<char>(1 << (2 * j + 1)));
        const __m256i s16 = _mm256_set1_epi8(16);
        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, bl), bl), s16));
        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, bh), bh), s16));
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(u + 64 * j), lo);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(u + 64 * j + 32), hi);
    }
    for (int j = 0; j < 8; ++j) {
      uint8_t s, m;
      k4_scale_min(j, sc, &s, &m);
      scale[j] = d * static_cast<float>(s);
      mn[j] = dmin * static_cast<float>(m);
    }
  } else {  // Q6_K
    const BlockQ6_K* x = static_cast<const BlockQ6_K*>(blk);
    const float d = h2f(x->d);
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = x->ql + 64 * half;
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x->qh + 32 * half));
      uint8_t* o = u + 128 * half;
      // element l + 32m: low nibble from ql, 2 high bits from qh bits 2m, 2m+1
      const __m256i h0 = _mm256_and_si256(h, m2), h1 = _mm256_and_si256(_mm256_srli_epi16(h, 2), m2);
      const __m256i h2 = _mm256_and_si256(_mm256_srli_epi16(h, 4), m2), h3 = _mm256_and_si256(_mm256_srli_epi16(h, 6), m2);
      const __m256i q0 = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(h0, 4));
      const __m256i q1 = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(h1, 4));
      const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_slli_epi16(h2, 4));
      const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_slli_epi16(h3, 4));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), q0);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 32), q1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 64), q2);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 96), q3);
    }
    for (int j = 0; j < 16; ++j) scale[j] = d * static_cast<float>(x->scales[j]);
  }
}

// Weight panel layout per sub-block s (S = K/SB of them), at wq + s*sub_bytes:
//   u8 codes [SB/4][32 rows][4] | scale f32[32] | min f32[32] (kMin only)
template <DType W>
constexpr size_t panel_sub_bytes() {
  using Tr = QTraits<W>;
  return static_cast<size_t>(Tr::SB) * kMR + kMR * 4 * (Tr::kMin ? 2 : 1);
}

template <DType W>
TANDEM_TGT void pack_panel_q(const Matrix& w, int64_t r0, unsigned char* wq) {
  using Tr = QTraits<W>;
  constexpr int SB = Tr::SB, QK = Tr::QK, NS = QK / SB;  // sub-blocks per weight block
  constexpr size_t kSub = panel_sub_bytes<W>();
  const int64_t nb = w.cols / QK;
  const int nr = static_cast<int>(std::min<int64_t>(kMR, w.rows - r0));
  const size_t bb = row_bytes(W, QK);
  alignas(64) uint8_t u[QK];
  float scale[NS], mn[NS];
  for (int i = 0; i < kMR; ++i) {
    const char* row = static_cast<const char*>(w.data) + static_cast<size_t>(r0 + std::min(i, nr - 1)) * w.row_stride;
    for (int64_t b = 0; b < nb; ++b) {
      if (i < nr) {
        decode_block<W>(row + b * bb, u, scale, mn);
      } else {  // padding rows: zero scale and min, codes irrelevant
        std::memset(u, 0, sizeof(u));
        for (int s = 0; s < NS; ++s) scale[s] = mn[s] = 0.0f;
      }
      for (int s = 0; s < NS; ++s) {
        unsigned char* sub = wq + (b * NS + s) * kSub;
        const uint32_t* src = reinterpret_cast<const uint32_t*>(u + s * SB);
        uint32_t* dst = reinterpret_cast<uint32_t*>(sub) + i;
        for (int g = 0; g < SB / 4; ++g) dst[g * kMR] = src[g];
        reinterpret_cast<float*>(sub + SB * kMR)[i] = scale[s];
        if constexpr (Tr::kMin) reinterpret_cast<float*>(sub + SB * kMR + kMR * 4)[i] = mn[s];
      }
    }
  }
}

// Activation quantizers, bit-identical to quantize_act_row_scalar: max and
// products are exact, vcvtps2dq rounds half to even like nearbyint and
// nearest_int, and the scales go through the same scalar conversions.
TANDEM_TGT void quant_q8_0_row(const float* x, BlockQ8_0* y, int64_t nb) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sign, v0), _mm512_andnot_ps(sign, v1)));
    const float d = amax / 127.f, id = amax != 0 ? 127.f / amax : 0.0f;
    y[i].d = f32_to_fp16(d);
    const __m512 s = _mm512_set1_ps(id);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, s))));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16),
                     _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, s))));
  }
}

TANDEM_TGT void quant_q8_k_row(const float* x, BlockQ8_K* y, int64_t nb) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (int64_t i = 0; i < nb; ++i, x += 256) {
    __m512 m = _mm512_setzero_ps();
    for (int j = 0; j < 16; ++j) m = _mm512_max_ps(m, _mm512_andnot_ps(sign, _mm512_loadu_ps(x + 16 * j)));
    const float amax = _mm512_reduce_max_ps(m);
    if (amax == 0) {
      std::memset(&y[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    float max = 0;  // the first element of largest magnitude, with its sign
    const __m512 am = _mm512_set1_ps(amax);
    for (int j = 0; j < 16; ++j) {
      const __mmask16 k = _mm512_cmp_ps_mask(_mm512_andnot_ps(sign, _mm512_loadu_ps(x + 16 * j)), am, _CMP_EQ_OQ);
      if (k) {
        max = x[16 * j + __builtin_ctz(k)];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m512 s = _mm512_set1_ps(iscale);
    const __m512i hi = _mm512_set1_epi32(127);
    for (int j = 0; j < 16; ++j) {
      const __m512i q = _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(s, _mm512_loadu_ps(x + 16 * j))), hi);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16 * j), _mm512_cvtepi32_epi8(q));
      y[i].bsums[j] = static_cast<int16_t>(_mm512_reduce_add_epi32(q));
    }
    y[i].d = 1 / iscale;
  }
}

// One column quantized into the weight type's activation format.
template <DType W>
TANDEM_TGT const char* quant_col(const float* x, int64_t K) {
  static thread_local std::vector<unsigned char> buf;
  if constexpr (QTraits<W>::kQ8K) {
    if (buf.size() < row_bytes(DType::Q8_K, K)) buf.resize(row_bytes(DType::Q8_K, K));
    quant_q8_k_row(x, reinterpret_cast<BlockQ8_K*>(buf.data()), K / 256);
  } else {
    if (buf.size() < row_bytes(DType::Q8_0, K)) buf.resize(row_bytes(DType::Q8_0, K));
    quant_q8_0_row(x, reinterpret_cast<BlockQ8_0*>(buf.data()), K / 32);
  }
  return reinterpret_cast<const char*>(buf.data());
}

// Column group layout per sub-block s, at ap + s*sub_bytes:
//   s8 codes [SB/4][6 cols][4] | d_a f32[6] | -bias*sum i32[6] | d_a*sum f32[6] | pad to 8-byte multiple
template <DType W>
constexpr size_t act_sub_bytes() {
  return static_cast<size_t>(QTraits<W>::SB) * kNRq + 3 * kNRq * 4;
}

template <DType W>
TANDEM_TGT void pack_cols_q(const GemmTask& t, int g, unsigned char* ap) {
  using Tr = QTraits<W>;
  constexpr int SB = Tr::SB;
  constexpr size_t kSub = act_sub_bytes<W>();
  const int64_t K = t.w->cols, S = K / SB;
  for (int j = 0; j < kNRq; ++j) {
    const int c = g * kNRq + j;
    const char* src = c < t.n_cols ? quant_col<W>(static_cast<const float*>(t.act) + static_cast<size_t>(c) * K, K)
                                   : nullptr;
    for (int64_t s = 0; s < S; ++s) {
      unsigned char* sub = ap + s * kSub;
      int32_t* codes = reinterpret_cast<int32_t*>(sub);
      float* da = reinterpret_cast<float*>(sub + SB * kNRq);
      int32_t* corr = reinterpret_cast<int32_t*>(sub + SB * kNRq + kNRq * 4);
      float* dsum = reinterpret_cast<float*>(sub + SB * kNRq + kNRq * 8);
      if (c >= t.n_cols) {
        for (int q = 0; q < SB / 4; ++q) codes[q * kNRq + j] = 0;
        da[j] = 0.0f; corr[j] = 0; dsum[j] = 0.0f;
        continue;
      }
      const int8_t* qs;
      float d;
      int sum = 0;
      if constexpr (Tr::kQ8K) {
        const BlockQ8_K* blk = reinterpret_cast<const BlockQ8_K*>(src) + (s * SB) / 256;
        const int off = static_cast<int>((s * SB) % 256);
        qs = blk->qs + off;
        d = blk->d;
        for (int q = off / 16; q < (off + SB) / 16; ++q) sum += blk->bsums[q];
      } else {
        const BlockQ8_0* blk = reinterpret_cast<const BlockQ8_0*>(src) + s;
        qs = blk->qs;
        d = fp16_to_f32(blk->d);
        for (int q = 0; q < 32; ++q) sum += qs[q];
      }
      for (int q = 0; q < SB / 4; ++q) std::memcpy(&codes[q * kNRq + j], qs + 4 * q, 4);
      da[j] = d;
      corr[j] = -Tr::bias * sum;
      dsum[j] = d * static_cast<float>(sum);
    }
  }
}

// 32 rows x 6 columns over S sub-blocks. y points at y[c0][r0]; ldy = w.rows.
template <DType W>
TANDEM_TGT void kernel_q(const unsigned char* wq, const unsigned char* ap, int64_t S, float* y, size_t ldy, int nr,
                         int nc) {
  using Tr = QTraits<W>;
  constexpr int SB = Tr::SB;
  constexpr size_t kWs = panel_sub_bytes<W>(), kAs = act_sub_bytes<W>();
  __m512 f0[kNRq], f1[kNRq];
#pragma GCC unroll 6
  for (int j = 0; j < kNRq; ++j) f0[j] = f1[j] = _mm512_setzero_ps();
  for (int64_t s = 0; s < S; ++s, wq += kWs, ap += kAs) {
    const int32_t* codes = reinterpret_cast<const int32_t*>(ap);
    const float* da = reinterpret_cast<const float*>(ap + SB * kNRq);
    const int32_t* corr = reinterpret_cast<const int32_t*>(ap + SB * kNRq + kNRq * 4);
    __m512i i0[kNRq], i1[kNRq];
#pragma GCC unroll 6
    for (int j = 0; j < kNRq; ++j) i0[j] = i1[j] = _mm512_set1_epi32(corr[j]);
#pragma GCC unroll 8
    for (int q = 0; q < SB / 4; ++q) {
      const __m512i w0 = _mm512_load_si512(wq + q * 128), w1 = _mm512_load_si512(wq + q * 128 + 64);
#pragma GCC unroll 6
      for (int j = 0; j < kNRq; ++j) {
        const __m512i b = _mm512_set1_epi32(codes[q * kNRq + j]);
        i0[j] = _mm512_dpbusd_epi32(i0[j], w0, b);
        i1[j] = _mm512_dpbusd_epi32(i1[j], w1, b);
      }
    }
    const float* sc = reinterpret_cast<const float*>(wq + SB * kMR);
    const __m512 s0 = _mm512_load_ps(sc), s1 = _mm512_load_ps(sc + 16);
#pragma GCC unroll 6
    for (int j = 0; j < kNRq; ++j) {
      const __m512 d = _mm512_set1_ps(da[j]);
      f0[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0[j]), _mm512_mul_ps(s0, d), f0[j]);
      f1[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1[j]), _mm512_mul_ps(s1, d), f1[j]);
    }
    if constexpr (Tr::kMin) {
      const float* mn = sc + kMR;
      const float* dsum = reinterpret_cast<const float*>(ap + SB * kNRq + kNRq * 8);
      const __m512 m0 = _mm512_load_ps(mn), m1 = _mm512_load_ps(mn + 16);
#pragma GCC unroll 6
      for (int j = 0; j < kNRq; ++j) {
        const __m512 ds = _mm512_set1_ps(dsum[j]);
        f0[j] = _mm512_fnmadd_ps(m0, ds, f0[j]);
        f1[j] = _mm512_fnmadd_ps(m1, ds, f1[j]);
      }
    }
  }
  for (int j = 0; j < nc; ++j) store_col(y + static_cast<size_t>(j) * ldy, f0[j], f1[j], nr);
}

template <DType W>
void run_q(const GemmTask& t, ThreadPool& pool) {
  using Tr = QTraits<W>;
  const Matrix& w = *t.w;
  const int64_t S = w.cols / Tr::SB;
  const int n_groups = (t.n_cols + kNRq - 1) / kNRq;
  const size_t group_bytes = static_cast<size_t>(S) * act_sub_bytes<W>();
  unsigned char* ap = grow(act_pack_buffer(), group_bytes * n_groups);
  pool.parallel_for(n_groups, [&](int64_t g0, int64_t g1, int) {
    for (int64_t g = g0; g < g1; ++g) pack_cols_q<W>(t, static_cast<int>(g), ap + g * group_bytes);
  });
  const int64_t n_panels = (w.rows + kMR - 1) / kMR;
  pool.parallel_for(n_panels, [&](int64_t p0, int64_t p1, int) {
    unsigned char* wq = grow(panel_buffer(), static_cast<size_t>(S) * panel_sub_bytes<W>());
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t r0 = p * kMR;
      const int nr = static_cast<int>(std::min<int64_t>(kMR, w.rows - r0));
      pack_panel_q<W>(w, r0, wq);
      for (int g = 0; g < n_groups; ++g) {
        const int c0 = g * kNRq;
        kernel_q<W>(wq, ap + g * group_bytes, S, t.y + static_cast<size_t>(c0) * w.rows + r0,
                    static_cast<size_t>(w.rows), nr, std::min(kNRq, t.n_cols - c0));
      }
    }
  });
}

#include "kernels/gemv_tiled_avx512.inc"  // 1..8 columns, same per-output order

// Sub-block byte sizes keep every f32/i32 array and every 64-byte code row aligned.
static_assert(panel_sub_bytes<DType::Q6_K>() % 64 == 0 && panel_sub_bytes<DType::Q4_K>() % 64 == 0 &&
              panel_sub_bytes<DType::Q8_0>() % 64 == 0);
static_assert(act_sub_bytes<DType::Q6_K>() % 4 == 0 && act_sub_bytes<DType::Q8_0>() % 4 == 0);

#undef TANDEM_TGT

}  // namespace
}  // namespace tiled512

#define TANDEM_TILED_TGT TANDEM_TARGET_AVX512

namespace {
TANDEM_TILED_TGT void quant_act_q8_0(DType, const float* x, void* dst, int64_t n) {
  tiled512::quant_q8_0_row(x, static_cast<BlockQ8_0*>(dst), n / 32);
}
TANDEM_TILED_TGT void quant_act_q8_k(DType, const float* x, void* dst, int64_t n) {
  tiled512::quant_q8_k_row(x, static_cast<BlockQ8_K*>(dst), n / 256);
}
std::atomic<int> g_tiled{-1};  // -1: not read from the environment yet
}  // namespace

bool gemm_tiled_enabled() {
  int v = g_tiled.load(std::memory_order_relaxed);
  if (v < 0) {
    // On by default: the decode companion (gemv_tiled_avx512) sums every
    // output in the tiled order, so whole prompt, micro-batches and stepwise
    // runs agree bit for bit. TANDEM_GEMM_TILED=0 switches both off.
    v = env_switch_on("TANDEM_GEMM_TILED") ? 1 : 0;
    g_tiled.store(v, std::memory_order_relaxed);
  }
  return v != 0;
}

void set_gemm_tiled_enabled(bool on) { g_tiled.store(on ? 1 : 0, std::memory_order_relaxed); }

QuantActFn quant_act_tiled_avx512(DType act) {
  if (act == DType::Q8_0) return quant_act_q8_0;
  if (act == DType::Q8_K) return quant_act_q8_k;
  return nullptr;
}

GemmTiledFn gemv_tiled_avx512(DType w) {
  using namespace tiled512;
  switch (w) {
    case DType::F32: return gemv_f<DType::F32>;
    case DType::F16: return gemv_f<DType::F16>;
    case DType::Q8_0: return gemv_q<DType::Q8_0>;
    case DType::Q4_0: return gemv_q<DType::Q4_0>;
    case DType::Q5_0: return gemv_q<DType::Q5_0>;
    case DType::Q4_K: return gemv_q<DType::Q4_K>;
    case DType::Q5_K: return gemv_q<DType::Q5_K>;
    case DType::Q6_K: return gemv_q<DType::Q6_K>;
    default: return nullptr;
  }
}

GemmTiledFn gemm_tiled_avx512(DType w) {
  using namespace tiled512;
  switch (w) {
    case DType::F32: return run_f<DType::F32>;
    case DType::F16: return run_f<DType::F16>;
    // BF16 is not here: matmul() sends it to gemm_bf16.h (the reference's exact order).
    case DType::Q8_0: return run_q<DType::Q8_0>;
    case DType::Q4_0: return run_q<DType::Q4_0>;
    case DType::Q5_0: return run_q<DType::Q5_0>;
    case DType::Q4_K: return run_q<DType::Q4_K>;
    case DType::Q5_K: return run_q<DType::Q5_K>;
    case DType::Q6_K: return run_q<DType::Q6_K>;
    default: return nullptr;
  }
}

}  // namespace tandem::kernels
