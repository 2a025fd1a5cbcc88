// AVX-512 VNNI Q8_0 x Q8_0 GEMV for decode (1..8 activation columns).
//
// Why a separate kernel: decode reads every weight once per step, so this
// loop must run at memory speed on one core (~23 GB/s each with 2 threads).
// The 256-bit shared kernel (gemm_q_simd.inc) spends ~13 uops per 34-byte
// block (sign trick twice, a scalar half->float per block); here a pair of
// blocks (64 quants) costs one 512-bit dpbusd per column:
//   * weights w (s8) become unsigned by w ^ 0x80 = w + 128, so
//     dpbusd(w + 128, a) = w·a + 128·Σa; the 128·Σa part is precomputed per
//     activation block pair as a 16-lane int32 vector and subtracted by
//     starting the accumulator at −128·Σa (exact integer arithmetic);
//   * activations are repacked once per call into 64-byte aligned pairs
//     (one aligned load per pair and column) with their block scales spread
//     over the 8 lanes of each block;
//   * the weight scales of the two blocks are broadcast and converted with
//     one vcvtph2ps; lane l of the accumulator collects block 2p + l/8.
// All columns of a row are computed in one pass over its weights, so for
// 5..8 columns the weights are not re-read.
//
// Numerics: the integer dot of every block is exact; per block the float
// product (d_w·d_a)·dot is the same as the scalar twin's; only the order of
// the float sums differs (16 lanes, then a tree reduction).
#include "kernels/gemv_avx512.h"  // first: target attributes, GCC 12 warning workaround

#include <cstring>

#include "core/aligned.h"
#include "kernels/quant_blocks.h"

namespace tandem::kernels {
namespace {

#define TANDEM_TGT TANDEM_TARGET_AVX512

// Activation columns repacked for the kernel (per thread, grown, never shrunk).
// Each array is [col][pair] of 64-byte vectors:
//   qs:   64 quants of blocks 2p, 2p+1 (zero-padded past the last block)
//   corr: i32 lane l = -128 * (sum of the 4 quants dpbusd puts in lane l)
//   d:    f32 lanes 0-7 = d of block 2p, lanes 8-15 = d of block 2p+1
struct PackedAct {
  int64_t n_pairs = 0;
  AlignedBuffer buf;  // qs | corr | d
  __m512i* qs = nullptr;
  __m512i* corr = nullptr;
  __m512* d = nullptr;
};

TANDEM_TGT void pack(const GemmTask& t, PackedAct& pa) {
  const int64_t nb = t.w->cols / kQK;
  const int64_t np = (nb + 1) / 2;
  pa.n_pairs = np;
  const size_t total = static_cast<size_t>(np) * t.n_cols;
  if (pa.buf.size() < 3 * 64 * total) pa.buf.resize(3 * 64 * total);
  pa.qs = reinterpret_cast<__m512i*>(pa.buf.data());
  pa.corr = pa.qs + total;
  pa.d = reinterpret_cast<__m512*>(pa.corr + total);
  const __m512i k128 = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int c = 0; c < t.n_cols; ++c) {
    const BlockQ8_0* a = reinterpret_cast<const BlockQ8_0*>(static_cast<const char*>(t.act) + c * t.act_row_bytes);
    for (int64_t p = 0; p < np; ++p) {
      const int64_t b0 = 2 * p, b1 = 2 * p + 1;
      alignas(64) int8_t q[64];
      std::memcpy(q, a[b0].qs, 32);
      float d1 = 0.0f;
      if (b1 < nb) {
        std::memcpy(q + 32, a[b1].qs, 32);
        d1 = _cvtsh_ss(a[b1].d);
      } else {
        std::memset(q + 32, 0, 32);
      }
      const __m512i qv = _mm512_load_si512(q);
      const size_t i = static_cast<size_t>(c) * np + p;
      pa.qs[i] = qv;
      // -(128 * a) summed in dpbusd's lane layout: dpbusd(0x80.., a) = 128·Σa per lane.
      pa.corr[i] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), k128, qv));
      pa.d[i] = _mm512_insertf32x8(_mm512_set1_ps(_cvtsh_ss(a[b0].d)), _mm256_set1_ps(d1), 1);
    }
  }
}

// Rows [r0, r1) for NC columns (the packed columns c0 .. c0+NC).
template <int NC>
TANDEM_TGT void rows(const GemmTask& t, const PackedAct& pa, int64_t r0, int64_t r1) {
  const Matrix& w = *t.w;
  const int64_t nb = w.cols / kQK;
  const int64_t np = pa.n_pairs;
  const int64_t full = nb / 2;  // pairs with two real weight blocks
  const __m512i k128 = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i* aq[NC];
  const __m512i* ac[NC];
  const __m512* ad[NC];
  for (int c = 0; c < NC; ++c) {
    aq[c] = pa.qs + static_cast<size_t>(c) * np;
    ac[c] = pa.corr + static_cast<size_t>(c) * np;
    ad[c] = pa.d + static_cast<size_t>(c) * np;
  }
  for (int64_t r = r0; r < r1; ++r) {
    const BlockQ8_0* x = reinterpret_cast<const BlockQ8_0*>(static_cast<const char*>(w.data) +
                                                            static_cast<size_t>(r) * w.row_stride);
    __m512 acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t p = 0; p < full; ++p) {
      const BlockQ8_0* b = x + 2 * p;
      const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs));
      const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs));
      const __m512i u = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), k128);
      const __m256i dh = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(static_cast<short>(b[0].d))),
                                                 _mm_set1_epi16(static_cast<short>(b[1].d)), 1);
      const __m512 dw = _mm512_cvtph_ps(dh);
      for (int c = 0; c < NC; ++c) {
        const __m512i s = _mm512_dpbusd_epi32(ac[c][p], u, aq[c][p]);
        acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, ad[c][p]), acc[c]);
      }
    }
    if (full < np) {  // odd block count: the last block alone (upper half zero)
      const BlockQ8_0* b = x + 2 * full;
      const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs));
      const __m512i u = _mm512_xor_si512(_mm512_zextsi256_si512(lo), k128);
      const __m512 dw = _mm512_zextps256_ps512(_mm256_set1_ps(_cvtsh_ss(b[0].d)));
      for (int c = 0; c < NC; ++c) {
        // upper activation lanes are zero, so their dot and correction are 0
        const __m512i s = _mm512_dpbusd_epi32(ac[c][full], u, aq[c][full]);
        acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, ad[c][full]), acc[c]);
      }
    }
    for (int c = 0; c < NC; ++c) t.y[static_cast<size_t>(c) * w.rows + r] = _mm512_reduce_add_ps(acc[c]);
  }
}

TANDEM_TGT void gemv_q8_0(const GemmTask& t, int64_t r0, int64_t r1) {
  thread_local PackedAct pa;
  pack(t, pa);
  gemv512::with_cols(t.n_cols, [&](auto nc) { rows<decltype(nc)::value>(t, pa, r0, r1); });
}

#undef TANDEM_TGT
}  // namespace

GemmRowsFn gemv_rows_avx512(DType w) {
  switch (w) {
    case DType::Q8_0: return gemv_q8_0;
    case DType::Q4_K: return gemv_q4_k_avx512();
    case DType::Q5_K: return gemv_q5_k_avx512();
    case DType::Q6_K: return gemv_q6_k_avx512();
    default: return nullptr;
  }
}

}  // namespace tandem::kernels
