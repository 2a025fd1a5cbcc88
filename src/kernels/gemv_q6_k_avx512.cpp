// AVX-512 VNNI Q6_K x Q8_K GEMV for decode (1..8 activation columns).
//
// Per 256-element super-block (210 weight bytes: ql[128] low nibbles, qh[64]
// high 2-bit pairs, 16 int8 scales, f16 d):
//   y += d_w·d_a · ( Σ_s sc_s (q_s · a_s) − 32 Σ_s sc_s bsum_s ),  q in 0..63
// The row-block kernel (gemm_q_simd.inc: rows_q6_k) works on 32-element
// chunks (half h, chunk k: elements 128h + 32k .. +31) and puts the products of
// elements 4i..4i+3 of every chunk in int32 lane i of 8, converts the 8 lanes
// once per super-block and adds them into 8 float lanes. This kernel forms
// the same 8 integers 512 bits at a time:
//   vector k (k = 0..3) = [chunk (0,k) | chunk (1,k)]: its low nibbles come
//   from ql[32(k&1) ..] and ql[64 + 32(k&1) ..] (>> 4 for k >= 2), its high
//   pair from qh[0..63] shifted by 2k, so one 64-byte qh load serves both halves;
//   one dpbusd per column (u6 x s8, |lane| <= 4·63·128 fits an i16), times the
//   lane's sub-block scale by vpdpwssd (scale in the low i16, 0 in the high
//   one, so the product is exact), then the two halves folded into 8 lanes.
// The activations are repacked once per call in that order. Integer sums are
// exact whatever their order, and the float part repeats rows_q6_k's
// operations lane for lane, so results equal the row-block kernel (and the
// wide prefill kernel) bit for bit: prefill and decode of a model agree.
#include "kernels/gemv_avx512.h"  // first: target attributes, GCC 12 warning workaround

#include <cstring>

#include "core/aligned.h"
#include "core/env.h"
#include "kernels/quant_blocks.h"

namespace tandem::kernels {
namespace {

#define TANDEM_TGT TANDEM_TARGET_AVX512

// Per column and super-block, 5 64-byte records ([col][block][5]):
//   0..3: activation quants of vector k = [a[32k..32k+31] | a[128+32k..128+32k+31]]
//   4:    bytes 0-31 = the 16 bsums (i16), bytes 32-35 = d_a (f32)
struct PackedActQ6 {
  int64_t nb = 0;
  AlignedBuffer buf;
  const __m512i* rec = nullptr;
};

TANDEM_TGT void pack_q6(const GemmTask& t, PackedActQ6& pa) {
  const int64_t nb = t.w->cols / kQKK;
  pa.nb = nb;
  const size_t total = static_cast<size_t>(nb) * t.n_cols;
  if (pa.buf.size() < 5 * 64 * total) pa.buf.resize(5 * 64 * total);
  unsigned char* out = reinterpret_cast<unsigned char*>(pa.buf.data());
  for (int c = 0; c < t.n_cols; ++c) {
    const BlockQ8_K* a = reinterpret_cast<const BlockQ8_K*>(static_cast<const char*>(t.act) + c * t.act_row_bytes);
    for (int64_t b = 0; b < nb; ++b, out += 5 * 64) {
      for (int k = 0; k < 4; ++k) {
        std::memcpy(out + 64 * k, a[b].qs + 32 * k, 32);
        std::memcpy(out + 64 * k + 32, a[b].qs + 128 + 32 * k, 32);
      }
      std::memcpy(out + 256, a[b].bsums, 32);
      std::memcpy(out + 288, &a[b].d, 4);
    }
  }
  pa.rec = reinterpret_cast<const __m512i*>(pa.buf.data());
}

template <int NC>
TANDEM_TGT void rows_q6(const GemmTask& t, const PackedActQ6& pa, int64_t r0, int64_t r1) {
  const Matrix& w = *t.w;
  const int64_t nb = pa.nb;
  const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(0x03);
  // lane -> scale index for vector k: lanes 0-3 sc[2k], 4-7 sc[2k+1] (half 0),
  // 8-11 sc[8+2k], 12-15 sc[9+2k] (half 1)
  const __m512i idx0 = _mm512_set_epi32(9, 9, 9, 9, 8, 8, 8, 8, 1, 1, 1, 1, 0, 0, 0, 0);
  const __m512i two = _mm512_set1_epi32(2);
  const __m512i idx1 = _mm512_add_epi32(idx0, two);
  const __m512i idx2 = _mm512_add_epi32(idx1, two);
  const __m512i idx3 = _mm512_add_epi32(idx2, two);
  const __m512i lo16 = _mm512_set1_epi32(0xFFFF);
  const __m512i* act[NC];
  for (int c = 0; c < NC; ++c) act[c] = pa.rec + 5 * static_cast<size_t>(c) * nb;
  for (int64_t r = r0; r < r1; ++r) {
    const BlockQ6_K* x = reinterpret_cast<const BlockQ6_K*>(static_cast<const char*>(w.data) +
                                                            static_cast<size_t>(r) * w.row_stride);
    __m256 acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ6_K* xb = x + b;
      gemv512::prefetch_ahead<sizeof(BlockQ6_K)>(xb);
      const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(xb->scales));
      const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);  // 16 scales as i16 (the bsum term)
      // 16 scales as i32 lanes holding the i16 scale in the low half and 0 in the high one
      const __m512i sc32 = _mm512_and_si512(_mm512_cvtepi16_epi32(sc16), lo16);
      const __m512i s0 = _mm512_permutexvar_epi32(idx0, sc32), s1 = _mm512_permutexvar_epi32(idx1, sc32);
      const __m512i s2 = _mm512_permutexvar_epi32(idx2, sc32), s3 = _mm512_permutexvar_epi32(idx3, sc32);
      // ql chunks: A = [ql 0..31 | ql 64..95], B = [ql 32..63 | ql 96..127]
      const __m512i l0 = _mm512_loadu_si512(xb->ql), l1 = _mm512_loadu_si512(xb->ql + 64);
      const __m512i la = _mm512_shuffle_i64x2(l0, l1, 0x44), lb = _mm512_shuffle_i64x2(l0, l1, 0xEE);
      const __m512i h = _mm512_loadu_si512(xb->qh);  // [qh 0..31 (half 0) | qh 32..63 (half 1)]
      const __m512i q0 = _mm512_or_si512(_mm512_and_si512(la, m4), _mm512_slli_epi16(_mm512_and_si512(h, m3), 4));
      const __m512i q1 = _mm512_or_si512(_mm512_and_si512(lb, m4),
                                         _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(h, 2), m3), 4));
      const __m512i q2 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(la, 4), m4),
                                         _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(h, 4), m3), 4));
      const __m512i q3 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(lb, 4), m4),
                                         _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(h, 6), m3), 4));
      const float dw = _cvtsh_ss(xb->d);
      for (int c = 0; c < NC; ++c) {
        const __m512i* a = act[c] + 5 * b;
        const __m512i z = _mm512_setzero_si512();
        __m512i is = _mm512_dpwssd_epi32(z, _mm512_dpbusd_epi32(z, q0, a[0]), s0);
        is = _mm512_dpwssd_epi32(is, _mm512_dpbusd_epi32(z, q1, a[1]), s1);
        is = _mm512_dpwssd_epi32(is, _mm512_dpbusd_epi32(z, q2, a[2]), s2);
        is = _mm512_dpwssd_epi32(is, _mm512_dpbusd_epi32(z, q3, a[3]), s3);
        // lane i of both halves covers elements 4i..4i+3 of its chunks: fold to 8 lanes
        __m256i is8 = _mm256_add_epi32(_mm512_castsi512_si256(is), _mm512_extracti64x4_epi64(is, 1));
        // - 32 * (bsum_2i sc_2i + bsum_2i+1 sc_2i+1), as rows_q6_k starts its lanes
        const __m256i bs = _mm512_castsi512_si256(a[4]);
        is8 = _mm256_sub_epi32(is8, _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5));
        float da;
        std::memcpy(&da, reinterpret_cast<const unsigned char*>(a + 4) + 32, 4);
        acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is8), _mm256_set1_ps(dw * da), acc[c]);
      }
    }
    for (int c = 0; c < NC; ++c) t.y[static_cast<size_t>(c) * w.rows + r] = hsum8_ps(acc[c]);
  }
}

TANDEM_TGT void gemv_q6_k(const GemmTask& t, int64_t r0, int64_t r1) {
  thread_local PackedActQ6 pa;
  pack_q6(t, pa);
  gemv512::with_cols(t.n_cols, [&](auto nc) { rows_q6<decltype(nc)::value>(t, pa, r0, r1); });
}

#undef TANDEM_TGT
}  // namespace

// TANDEM_Q6_K_GEMV=0 (read once): Q6_K decode back on the row-block kernel
// (same bits, for A/B runs).
GemmRowsFn gemv_q6_k_avx512() {
  static const bool on = env_switch_on("TANDEM_Q6_K_GEMV");
  return on ? gemv_q6_k : nullptr;
}

}  // namespace tandem::kernels
