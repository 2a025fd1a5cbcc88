// AVX-512 VNNI Q4_K / Q5_K x Q8_K GEMV for decode (1..8 activation columns).
//
// Per 256-element super-block (144 weight bytes):
//   y += d_a·d_w · Σ_j sc_j (q_j · a_j) − d_a·dmin_w · Σ_j m_j (bsum_2j + bsum_2j+1)
// The 128 quant bytes are two 512-bit loads; their low / high nibbles give
// four vectors whose halves are sub-blocks (0|2), (1|3), (4|6), (5|7). The
// activations are repacked once per call in that order, so each vector is
// one dpbusd per column (u4 x s8 → 16 int32 lanes, 8 per sub-block), scaled
// by the sub-block scales spread over the same lanes (vpdpwssd, exact), and
// the super-block's integer sum is converted once. The mins use the
// pre-summed bsum pairs. Integer parts are exact; the float part repeats
// the shared 256-bit kernel's operations lane for lane (see rows_k).
// Q5_K: the same, each quant's fifth bit (qh byte e, bit s for element e of
// sub-block s) added as +16 under a byte mask before the dpbusd (|lane| <=
// 4·31·128 still fits an i16); its scales, mins and float part are Q4_K's.
#include "kernels/gemv_avx512.h"  // first: target attributes, GCC 12 warning workaround

#include <cstring>
#include <type_traits>

#include "core/aligned.h"
#include "core/env.h"
#include "kernels/k4_scales.h"
#include "kernels/quant_blocks.h"

namespace tandem::kernels {
namespace {

#define TANDEM_TGT TANDEM_TARGET_AVX512

// Per column and super-block (64-byte records, [col][block]):
//   qs: 4 vectors of 64 activation quants, sub-blocks (0|2), (1|3), (4|6), (5|7)
//   aux: bytes 0-31 = bsum pairs (8 × i32, sign-extended once here rather
//        than per row), bytes 32-35 = d_a (f32)
struct PackedActK {
  int64_t nb = 0;
  AlignedBuffer buf;
  __m512i* qs = nullptr;   // [col][block][4]
  __m512i* aux = nullptr;  // [col][block]
};

TANDEM_TGT void pack_k(const GemmTask& t, PackedActK& pa) {
  const int64_t nb = t.w->cols / kQKK;
  pa.nb = nb;
  const size_t total = static_cast<size_t>(nb) * t.n_cols;
  if (pa.buf.size() < 5 * 64 * total) pa.buf.resize(5 * 64 * total);
  pa.qs = reinterpret_cast<__m512i*>(pa.buf.data());
  pa.aux = pa.qs + 4 * total;
  for (int c = 0; c < t.n_cols; ++c) {
    const BlockQ8_K* a = reinterpret_cast<const BlockQ8_K*>(static_cast<const char*>(t.act) + c * t.act_row_bytes);
    for (int64_t b = 0; b < nb; ++b) {
      const size_t i = static_cast<size_t>(c) * nb + b;
      int8_t* q = reinterpret_cast<int8_t*>(pa.qs + 4 * i);
      // vector v (0..3) holds sub-blocks s0 = 4*(v/2) + v%2 and s0 + 2
      for (int v = 0; v < 4; ++v) {
        const int s0 = 4 * (v / 2) + v % 2;
        std::memcpy(q + 64 * v, a[b].qs + 32 * s0, 32);
        std::memcpy(q + 64 * v + 32, a[b].qs + 32 * (s0 + 2), 32);
      }
      int32_t pairs[8];
      for (int j = 0; j < 8; ++j) pairs[j] = a[b].bsums[2 * j] + a[b].bsums[2 * j + 1];
      unsigned char* aux = reinterpret_cast<unsigned char*>(pa.aux + i);
      std::memcpy(aux, pairs, 32);
      std::memcpy(aux + 32, &a[b].d, 4);
    }
  }
}


// Byte masks for the fifth bits of the 4 quant vectors: vector v holds
// sub-blocks s0 | s0 + 2 (s0 = 4*(v/2) + v%2), whose bits sit in qh bit s0
// (low half) and bit s0 + 2 (high half).
TANDEM_TGT inline __m512i q5_bit_mask(int v) {
  const int s0 = 4 * (v / 2) + v % 2;
  return _mm512_inserti64x4(_mm512_set1_epi8(static_cast<char>(1 << s0)),
                            _mm256_set1_epi8(static_cast<char>(1 << (s0 + 2))), 1);
}

template <int NC, bool kQ5>
TANDEM_TGT void rows_k(const GemmTask& t, const PackedActK& pa, int64_t r0, int64_t r1) {
  using Block = std::conditional_t<kQ5, BlockQ5_K, BlockQ4_K>;
  const Matrix& w = *t.w;
  const int64_t nb = pa.nb;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  // lane -> sub-block index for the 4 quant vectors
  const __m512i idx0 = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i idx1 = _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i idx2 = _mm512_set_epi32(6, 6, 6, 6, 6, 6, 6, 6, 4, 4, 4, 4, 4, 4, 4, 4);
  const __m512i idx3 = _mm512_set_epi32(7, 7, 7, 7, 7, 7, 7, 7, 5, 5, 5, 5, 5, 5, 5, 5);
  const __m512i sixteen = _mm512_set1_epi8(16);
  const __m512i hm0 = q5_bit_mask(0), hm1 = q5_bit_mask(1), hm2 = q5_bit_mask(2), hm3 = q5_bit_mask(3);
  const __m512i* aq[NC];
  const __m512i* ax[NC];
  for (int c = 0; c < NC; ++c) {
    aq[c] = pa.qs + 4 * static_cast<size_t>(c) * nb;
    ax[c] = pa.aux + static_cast<size_t>(c) * nb;
  }
  for (int64_t r = r0; r < r1; ++r) {
    const Block* x = reinterpret_cast<const Block*>(static_cast<const char*>(w.data) +
                                                    static_cast<size_t>(r) * w.row_stride);
    // 8-lane float accumulators updated exactly like gemm_q_simd.inc's
    // rows_q45_k (same integers per lane, same fmadd/fnmadd order, same final
    // reduction), so decode gives bit-identical results to the multi-column
    // path and prefill/stepwise runs of a model agree (tests/model parity).
    __m256 acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const Block* xb = x + b;
      gemv512::prefetch_ahead<sizeof(Block)>(xb);
      const __m128i scm = k4_unpack_scales(xb);
      const __m512i sc32 = _mm512_cvtepu8_epi32(scm);  // lanes 0-7 scales, 8-15 mins
      const __m512i s0 = _mm512_permutexvar_epi32(idx0, sc32), s1 = _mm512_permutexvar_epi32(idx1, sc32);
      const __m512i s2 = _mm512_permutexvar_epi32(idx2, sc32), s3 = _mm512_permutexvar_epi32(idx3, sc32);
      const __m256i mins32 = _mm512_extracti64x4_epi64(sc32, 1);  // m_0..m_7 as i32
      const __m512i q0 = _mm512_loadu_si512(xb->qs), q1 = _mm512_loadu_si512(xb->qs + 64);
      __m512i lo0 = _mm512_and_si512(q0, m4), hi0 = _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4);
      __m512i lo1 = _mm512_and_si512(q1, m4), hi1 = _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4);
      if constexpr (kQ5) {
        // the 32 qh bytes in both halves: byte e carries element e of every sub-block
        const __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb->qh)));
        lo0 = _mm512_mask_add_epi8(lo0, _mm512_test_epi8_mask(h, hm0), lo0, sixteen);
        hi0 = _mm512_mask_add_epi8(hi0, _mm512_test_epi8_mask(h, hm1), hi0, sixteen);
        lo1 = _mm512_mask_add_epi8(lo1, _mm512_test_epi8_mask(h, hm2), lo1, sixteen);
        hi1 = _mm512_mask_add_epi8(hi1, _mm512_test_epi8_mask(h, hm3), hi1, sixteen);
      }
      // [d_w, dmin_w] x 4 from the block's first 4 bytes: one conversion for both
      int32_t dd_bits;
      std::memcpy(&dd_bits, xb, 4);
      const __m256 ddw = _mm256_cvtph_ps(_mm_set1_epi32(dd_bits));
      for (int c = 0; c < NC; ++c) {
        const __m512i* a = aq[c] + 4 * b;
        const __m512i z = _mm512_setzero_si512();
        // |dpbusd lane| <= 4*31*128 fits an i16 and the scales' high i16 is 0, so
        // vpdpwssd adds lane * scale exactly (what vpmulld + vpaddd computed)
        __m512i is = _mm512_dpwssd_epi32(z, _mm512_dpbusd_epi32(z, lo0, a[0]), s0);
        is = _mm512_dpwssd_epi32(is, _mm512_dpbusd_epi32(z, hi0, a[1]), s1);
        is = _mm512_dpwssd_epi32(is, _mm512_dpbusd_epi32(z, lo1, a[2]), s2);
        is = _mm512_dpwssd_epi32(is, _mm512_dpbusd_epi32(z, hi1, a[3]), s3);
        // lane l of both halves covers elements 4l..4l+3 of a sub-block: fold to 8 lanes
        const __m256i is8 = _mm256_add_epi32(_mm512_castsi512_si256(is), _mm512_extracti64x4_epi64(is, 1));
        const __m256i pairs = _mm512_castsi512_si256(ax[c][b]);
        // lane j: m_j * (bsum_2j + bsum_2j+1); |pair| <= 2*16*128 fits the low i16, m_j's high i16 is 0
        const __m256i ms8 = _mm256_madd_epi16(pairs, mins32);
        // [d_w·d_a, dmin_w·d_a] x 4: the same products the scalar form rounded
        const __m256 dd = _mm256_mul_ps(ddw, _mm256_broadcast_ss(reinterpret_cast<const float*>(ax[c] + b) + 8));
        acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is8), _mm256_moveldup_ps(dd), acc[c]);
        acc[c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms8), _mm256_movehdup_ps(dd), acc[c]);
      }
    }
    for (int c = 0; c < NC; ++c) t.y[static_cast<size_t>(c) * w.rows + r] = hsum8_ps(acc[c]);
  }
}

template <bool kQ5>
TANDEM_TGT void gemv_k(const GemmTask& t, int64_t r0, int64_t r1) {
  thread_local PackedActK pa;
  pack_k(t, pa);
  gemv512::with_cols(t.n_cols, [&](auto nc) { rows_k<decltype(nc)::value, kQ5>(t, pa, r0, r1); });
}

#undef TANDEM_TGT
}  // namespace

GemmRowsFn gemv_q4_k_avx512() { return gemv_k<false>; }
// TANDEM_Q5_K_GEMV=0 (read once): Q5_K decode back on the row-block kernel
// (same bits, for A/B runs).
GemmRowsFn gemv_q5_k_avx512() {
  static const bool on = env_switch_on("TANDEM_Q5_K_GEMV");
  return on ? gemv_k<true> : nullptr;
}

}  // namespace tandem::kernels
