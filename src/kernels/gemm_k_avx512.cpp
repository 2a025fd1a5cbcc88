// Wide AVX-512 VNNI kernels for Q4_K / Q5_K / Q6_K x Q8_K (gemm_k_wide.h):
// prompt prefill, bit-identical to the row-block kernels of gemm_q_simd.inc.
//
// Two weight rows share each 512-bit vector: the low 256 bits belong to row r,
// the high 256 bits to row r2 (a missing last row is replaced by a copy of
// the previous one, computed but not stored; lanes never mix). Per
// super-block (256 elements) a row pair is unpacked ONCE into
//   W[j]   j = 0..7: unsigned quants of 32 elements per half (Q4_K/Q5_K: the
//          sub-block j; Q6_K: elements 32j..32j+31, i.e. sub-blocks 2j, 2j+1),
//   s2[k]  per i32 lane: the scale of W[2k]'s lane in the low i16, W[2k+1]'s
//          in the high i16,
// and applied to a group of activation columns. Per column and k, with A_j the
// column's quants 32j..32j+31 broadcast to both halves:
//   D_j = dpbusd(W[j], A_j)   i32 lane l of a half = the sum of the 4 products
//                             of elements 4l..4l+3 (the row-block kernel's lane l)
//   x   = D_2k in the low i16 of each lane, D_2k+1 in the high i16
//   is  = dpwssd(is, x, s2[k])  = is + D_2k*sc_2k + D_2k+1*sc_2k+1, exact
// (vpdpwssd instead of the slow vpmulld). x needs each D in an i16:
//   Q6_K   |D| <= 4*63*128 = 32256; x = blend(D_2k, D_2k+1 << 16).
//   Q4_K/5 the activations come offset by 128 (u8, copied once per call) and
//          the quants are the signed operand: D' = D + 128*sum(q) lies in
//          [0, 4*31*255 = 31620], so x = dpbusd(D'_2k+1 << 16, A'_2k, W[2k])
//          carries no borrow; the weight-only part of the offset,
//          sum_k s2 . (128*sum(q)), is computed once per row pair and block
//          and starts the sum negated.
// Lane l of each half of `is` is then exactly the integer in lane l of the
// row-block kernel's isum (the same products, integer arithmetic is exact),
// Q6_K starting, as there, from -32 * (bsums x scales). The float part repeats
// that kernel's operations per lane: acc = fmadd(cvt(is), da*dw, acc), then for
// Q4_K/Q5_K acc = fnmadd(cvt(msum), da*dmin, acc) with msum = bsums x min
// pairs (vpmaddwd, as there); da*dw is one f32 multiply per lane like the
// scalar product there, and each half ends with the same hsum8_ps (kernels/hsum.h). So every
// output has the row-block kernel's bits.
//
// Work split: fixed row blocks of kRowBlock rows across the pool (each y
// element is computed by exactly one thread with the same code, so results do
// not depend on the thread count). Inside a block, columns are swept in
// groups of kColGroup (their Q8_K rows stay in L2 while the block's row pairs
// stream through), kPairs row pairs at a time sharing each activation load.
#include "kernels/simd_target.h"  // first: target attributes, GCC 12 warning workaround
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <type_traits>
#include <vector>

#include "core/env.h"
#include "kernels/gemm_k_wide.h"
#include "kernels/hsum.h"
#include "kernels/k4_scales.h"
#include "kernels/quant_blocks.h"
#include "kernels/thread_pool.h"

namespace tandem::kernels {
namespace {

#define TANDEM_TGT TANDEM_TARGET_AVX512

enum class Kind { kQ4, kQ5, kQ6 };

constexpr int64_t kRowBlock = 32;  // rows per work item (16 row pairs)
constexpr int kColGroup = 64;      // activation columns per sweep of a row block
constexpr int kPairs = 2;          // row pairs sharing each activation load

// 256-bit loads of row r (low half) and row r2 (high half).
TANDEM_TGT inline __m512i join(const void* lo, const void* hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(static_cast<const __m256i*>(lo))),
                            _mm256_loadu_si256(static_cast<const __m256i*>(hi)), 1);
}

TANDEM_TGT inline __m512 join_f(float lo, float hi) {
  return _mm512_insertf32x8(_mm512_set1_ps(lo), _mm256_set1_ps(hi), 1);
}


// Mins as i16 pairs [m0,m0,m1,m1,..,m7,m7], to meet the 16 bsums in vpmaddwd.
TANDEM_TGT inline __m256i min_pairs(__m128i scm) {
  const __m128i m = _mm_cvtepu8_epi16(_mm_srli_si128(scm, 8));
  return _mm256_set_m128i(_mm_unpackhi_epi16(m, m), _mm_unpacklo_epi16(m, m));
}

// One super-block of a row pair, unpacked (see the file comment).
struct PairBlock {
  __m512i w[8];   // unsigned quants, 32 elements per half
  __m512i s[8];   // scale of each i32 lane of W[j]'s dot products (low i16, high i16 = 0)
  __m512i s2[4];  // s2[k]: s[2k] in the low i16 of each lane, s[2k+1] in the high i16
  __m512i negc;   // Q4_K/Q5_K: -(the same integer sum against activations of 128)
  __m512i ms;     // Q4_K/Q5_K: min pairs per half; Q6_K: the 16 scales as i16 per half
  __m512 dw;      // d of each half's row
  __m512 dmw;     // dmin of each half's row (Q4_K/Q5_K)
};

template <Kind K>
TANDEM_TGT inline void unpack_quants(const char* x0, const char* x1, int64_t b, PairBlock& p) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  if constexpr (K == Kind::kQ6) {
    const BlockQ6_K* b0 = reinterpret_cast<const BlockQ6_K*>(x0) + b;
    const BlockQ6_K* b1 = reinterpret_cast<const BlockQ6_K*>(x1) + b;
    const __m512i m2 = _mm512_set1_epi8(0x03);
    for (int h = 0; h < 2; ++h) {
      const __m512i l0 = join(b0->ql + 64 * h, b1->ql + 64 * h);
      const __m512i l1 = join(b0->ql + 64 * h + 32, b1->ql + 64 * h + 32);
      const __m512i hh = join(b0->qh + 32 * h, b1->qh + 32 * h);
      p.w[4 * h + 0] = _mm512_or_si512(_mm512_and_si512(l0, m4), _mm512_slli_epi16(_mm512_and_si512(hh, m2), 4));
      p.w[4 * h + 1] = _mm512_or_si512(_mm512_and_si512(l1, m4),
                                       _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hh, 2), m2), 4));
      p.w[4 * h + 2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l0, 4), m4),
                                       _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hh, 4), m2), 4));
      p.w[4 * h + 3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l1, 4), m4),
                                       _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hh, 6), m2), 4));
    }
    const __m256i sc0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b0->scales)));
    const __m256i sc1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b1->scales)));
    p.ms = _mm512_inserti64x4(_mm512_castsi256_si512(sc0), sc1, 1);
    // zero-extended i16 scales: index k < 16 -> row r's scale k, 16 + k -> row r2's
    const __m512i z0 = _mm512_cvtepu16_epi32(sc0), z1 = _mm512_cvtepu16_epi32(sc1);
    // chunk j: lanes 0-3 of a half take scale 2j (elements 0..15), lanes 4-7 scale 2j+1
    const __m512i base = _mm512_set_epi32(17, 17, 17, 17, 16, 16, 16, 16, 1, 1, 1, 1, 0, 0, 0, 0);
    for (int j = 0; j < 8; ++j)
      p.s[j] = _mm512_permutex2var_epi32(z0, _mm512_add_epi32(base, _mm512_set1_epi32(2 * j)), z1);
    p.dw = join_f(_cvtsh_ss(b0->d), _cvtsh_ss(b1->d));
  } else {
    using Blk = std::conditional_t<K == Kind::kQ5, BlockQ5_K, BlockQ4_K>;
    const Blk* b0 = reinterpret_cast<const Blk*>(x0) + b;
    const Blk* b1 = reinterpret_cast<const Blk*>(x1) + b;
    const __m128i sc0 = k4_unpack_scales(b0), sc1 = k4_unpack_scales(b1);
    // lanes 0-7: row r's 8 scales, 8-15: row r2's, as i32 (< 64: low i16 only)
    const __m512i sc32 = _mm512_cvtepu8_epi32(_mm_unpacklo_epi64(sc0, sc1));
    const __m512i base = _mm512_set_epi32(8, 8, 8, 8, 8, 8, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0);
    for (int j = 0; j < 8; ++j) p.s[j] = _mm512_permutexvar_epi32(_mm512_add_epi32(base, _mm512_set1_epi32(j)), sc32);
    p.ms = _mm512_inserti64x4(_mm512_castsi256_si512(min_pairs(sc0)), min_pairs(sc1), 1);
    __m512i hb = _mm512_setzero_si512();
    if constexpr (K == Kind::kQ5) hb = join(b0->qh, b1->qh);
    const __m512i sixteen = _mm512_set1_epi8(16);
    for (int i = 0; i < 4; ++i) {
      const __m512i q = join(b0->qs + 32 * i, b1->qs + 32 * i);
      __m512i lo = _mm512_and_si512(q, m4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
      if constexpr (K == Kind::kQ5) {
        // element e of sub-block s gets 16 when bit s of qh[e] is set
        const __mmask64 kl = _mm512_test_epi8_mask(hb, _mm512_set1_epi8(static_cast<char>(1 << (2 * i))));
        const __mmask64 kh = _mm512_test_epi8_mask(hb, _mm512_set1_epi8(static_cast<char>(1 << (2 * i + 1))));
        lo = _mm512_mask_add_epi8(lo, kl, lo, sixteen);
        hi = _mm512_mask_add_epi8(hi, kh, hi, sixteen);
      }
      p.w[2 * i] = lo;
      p.w[2 * i + 1] = hi;
    }
    p.dw = join_f(_cvtsh_ss(b0->d), _cvtsh_ss(b1->d));
    p.dmw = join_f(_cvtsh_ss(b0->dmin), _cvtsh_ss(b1->dmin));
  }
}

// The row pair's super-block b, unpacked (see the file comment).
template <Kind K>
TANDEM_TGT inline void unpack_pair(const char* x0, const char* x1, int64_t b, PairBlock& p) {
  unpack_quants<K>(x0, x1, b, p);
  for (int k = 0; k < 4; ++k) p.s2[k] = _mm512_or_si512(p.s[2 * k], _mm512_slli_epi32(p.s[2 * k + 1], 16));
  if constexpr (K != Kind::kQ6) {
    // sweep's sequence for a column of 128s (the activations' +128 offset), negated
    const __m512i z = _mm512_setzero_si512(), c128 = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512i c = z;
    for (int k = 0; k < 4; ++k) {
      const __m512i hi = _mm512_slli_epi32(_mm512_dpbusd_epi32(z, c128, p.w[2 * k + 1]), 16);
      c = _mm512_dpwssd_epi32(c, _mm512_dpbusd_epi32(hi, c128, p.w[2 * k]), p.s2[k]);
    }
    p.negc = _mm512_sub_epi32(z, c);
  }
}

// Applies super-block b of P row pairs to nc columns (acc[c * P + q]: pair q,
// low half its row r, high half its row r2, 8 lanes each). Each activation
// load feeds the P pairs.
template <Kind K, int P>
TANDEM_TGT inline void sweep(const unsigned char* act, size_t arb, int64_t b, int nc, const PairBlock (&p)[P],
                             __m512* acc) {
  const __m512i z = _mm512_setzero_si512();
  for (int c = 0; c < nc; ++c) {
    const BlockQ8_K* a = reinterpret_cast<const BlockQ8_K*>(act + c * arb) + b;
    const __m512i bs = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->bsums)));
    // per pair two integer chains (even / odd j), summed at the end: exact, shorter latency
    __m512i is0[P], is1[P];
#pragma GCC unroll 2
    for (int q = 0; q < P; ++q) {
      is0[q] = z;
      is1[q] = z;
      if constexpr (K == Kind::kQ6)
        is0[q] = _mm512_sub_epi32(z, _mm512_slli_epi32(_mm512_madd_epi16(bs, p[q].ms), 5));
      else
        is0[q] = p[q].negc;
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; j += 2) {
      const __m512i a0 = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->qs + 32 * j)));
      const __m512i a1 =
          _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->qs + 32 * j + 32)));
#pragma GCC unroll 2
      for (int q = 0; q < P; ++q) {
        __m512i x;
        if constexpr (K == Kind::kQ6) {
          // x = (D_j in the low i16, D_j+1 in the high i16) of every lane
          const __m512i de = _mm512_dpbusd_epi32(z, p[q].w[j], a0);
          const __m512i dd = _mm512_dpbusd_epi32(z, p[q].w[j + 1], a1);
          x = _mm512_mask_mov_epi16(de, 0xAAAAAAAAu, _mm512_slli_epi32(dd, 16));
        } else {
          // offset activations (u8) x quants (s8): D' = D + 128*sum(q) in [0, 4*31*255 = 31620],
          // so D'_j+1 * 65536 + D'_j holds both as i16 without a borrow
          const __m512i dd = _mm512_dpbusd_epi32(z, a1, p[q].w[j + 1]);
          x = _mm512_dpbusd_epi32(_mm512_slli_epi32(dd, 16), a0, p[q].w[j]);
        }
        if (j & 2) is1[q] = _mm512_dpwssd_epi32(is1[q], x, p[q].s2[j / 2]);
        else is0[q] = _mm512_dpwssd_epi32(is0[q], x, p[q].s2[j / 2]);
      }
    }
    const __m512 da = _mm512_set1_ps(a->d);
#pragma GCC unroll 2
    for (int q = 0; q < P; ++q) {
      const __m512i is = _mm512_add_epi32(is0[q], is1[q]);
      __m512 r = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_mul_ps(da, p[q].dw), acc[c * P + q]);
      if constexpr (K != Kind::kQ6)
        r = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(_mm512_madd_epi16(bs, p[q].ms)), _mm512_mul_ps(da, p[q].dmw), r);
      acc[c * P + q] = r;
    }
  }
}

// Rows r..r+2P-1 (clamped to r_end - 1: a duplicated row is computed but not
// stored; lanes never mix, so pairing does not change any output) x columns
// c0..c0+nc-1.
template <Kind K, int P>
TANDEM_TGT void row_group(const GemmTask& t, int64_t r, int64_t r_end, int c0, int nc, __m512* acc) {
  const Matrix& w = *t.w;
  const int64_t nb = w.cols / 256;
  const char* x[2 * P];
  int64_t rr[2 * P];
  for (int i = 0; i < 2 * P; ++i) {
    rr[i] = std::min(r + i, r_end - 1);
    x[i] = static_cast<const char*>(w.data) + static_cast<size_t>(rr[i]) * w.row_stride;
  }
  const unsigned char* act = static_cast<const unsigned char*>(t.act) + static_cast<size_t>(c0) * t.act_row_bytes;
  for (int c = 0; c < nc * P; ++c) acc[c] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    PairBlock p[P];
#pragma GCC unroll 2
    for (int q = 0; q < P; ++q) unpack_pair<K>(x[2 * q], x[2 * q + 1], b, p[q]);
    sweep<K, P>(act, t.act_row_bytes, b, nc, p, acc);
  }
  for (int c = 0; c < nc; ++c) {
    float* y = t.y + static_cast<size_t>(c0 + c) * w.rows;
    for (int q = 0; q < P; ++q) {
      const __m512 v = acc[c * P + q];
      if (r + 2 * q < r_end) y[r + 2 * q] = hsum8_ps(_mm512_castps512_ps256(v));
      if (r + 2 * q + 1 < r_end) y[r + 2 * q + 1] = hsum8_ps(_mm512_extractf32x8_ps(v, 1));
    }
  }
}

template <Kind K>
TANDEM_TGT void rows_wide(const GemmTask& t, int64_t r0, int64_t r1) {
  constexpr int P = kPairs;
  alignas(64) __m512 acc[kColGroup * P];
  for (int c0 = 0; c0 < t.n_cols; c0 += kColGroup) {
    const int nc = std::min(kColGroup, t.n_cols - c0);
    for (int64_t r = r0; r < r1; r += 2 * P) row_group<K, P>(t, r, r1, c0, nc, acc);
  }
}

// Copies the Q8_K activation rows with every quant offset by 128 (as u8: x ^ 0x80).
TANDEM_TGT void offset_act(const GemmTask& t, unsigned char* dst, int64_t c0, int64_t c1) {
  const int64_t nb = t.w->cols / 256;
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t c = c0; c < c1; ++c) {
    const BlockQ8_K* a = reinterpret_cast<const BlockQ8_K*>(static_cast<const char*>(t.act) + c * t.act_row_bytes);
    BlockQ8_K* o = reinterpret_cast<BlockQ8_K*>(dst + c * t.act_row_bytes);
    for (int64_t b = 0; b < nb; ++b) {
      o[b] = a[b];
      for (int i = 0; i < 256; i += 32) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs + i));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o[b].qs + i), _mm256_xor_si256(v, flip));
      }
    }
  }
}

template <Kind K>
void gemm_wide(const GemmTask& t, ThreadPool& pool) {
  GemmTask tw = t;
  if constexpr (K != Kind::kQ6) {
    // the caller's scratch: workers only read it, and only during this call
    thread_local std::vector<unsigned char> buf;
    const size_t bytes = t.act_row_bytes * static_cast<size_t>(t.n_cols);
    if (buf.size() < bytes) buf.resize(bytes);
    unsigned char* dst = buf.data();
    pool.parallel_for(t.n_cols, [&](int64_t c0, int64_t c1, int) { offset_act(t, dst, c0, c1); });
    tw.act = dst;
  }
  const int64_t rows = t.w->rows;
  const int64_t n_blocks = (rows + kRowBlock - 1) / kRowBlock;
  pool.parallel_for(n_blocks, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b) rows_wide<K>(tw, b * kRowBlock, std::min(rows, (b + 1) * kRowBlock));
  });
}

#undef TANDEM_TGT

std::atomic<int>& wide_state() {
  static std::atomic<int> on{env_switch_on("TANDEM_KQUANT_WIDE") ? 1 : 0};
  return on;
}

}  // namespace

GemmWideFn gemm_k_wide_avx512(DType w) {
  switch (w) {
    case DType::Q4_K: return gemm_wide<Kind::kQ4>;
    case DType::Q5_K: return gemm_wide<Kind::kQ5>;
    case DType::Q6_K: return gemm_wide<Kind::kQ6>;
    default: return nullptr;
  }
}

bool kquant_wide_enabled() { return wide_state().load(std::memory_order_relaxed) != 0; }
void set_kquant_wide_enabled(bool on) { wide_state().store(on ? 1 : 0, std::memory_order_relaxed); }

}  // namespace tandem::kernels
