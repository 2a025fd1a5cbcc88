// Scalar dot products of a weight row with an activation row in the format
// the reference engine pairs with it (integer sums per block, then scales).
#include "core/fp16.h"
#include "kernels/gemm_internal.h"
#include "kernels/quant_blocks.h"

#include <cstring>

namespace tandem::kernels {
namespace {

float dot_f32(const float* w, const float* a, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += w[i] * a[i];
  return s;
}

float dot_f16(const uint16_t* w, const uint16_t* a, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += fp16_to_f32(w[i]) * fp16_to_f32(a[i]);
  return s;
}

float dot_bf16(const uint16_t* w, const uint16_t* a, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += bf16_to_f32(w[i]) * bf16_to_f32(a[i]);
  return s;
}

float dot_q4_0(const BlockQ4_0* x, const BlockQ8_0* y, int64_t nb) {
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int sum = 0;
    for (int j = 0; j < 16; ++j)
      sum += ((x[i].qs[j] & 0xF) - 8) * y[i].qs[j] + ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
    s += static_cast<float>(sum) * (fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d));
  }
  return s;
}

float dot_q4_1(const BlockQ4_1* x, const BlockQ8_1* y, int64_t nb) {
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int sum = 0;
    for (int j = 0; j < 16; ++j) sum += (x[i].qs[j] & 0xF) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
    s += static_cast<float>(sum) * (fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d)) +
         fp16_to_f32(x[i].m) * fp16_to_f32(y[i].s);
  }
  return s;
}

float dot_q5_0(const BlockQ5_0* x, const BlockQ8_0* y, int64_t nb) {
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    uint32_t qh;
    std::memcpy(&qh, x[i].qh, 4);
    int sum = 0;
    for (int j = 0; j < 16; ++j) {
      const int a = ((x[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4)) - 16;
      const int b = ((x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
      sum += a * y[i].qs[j] + b * y[i].qs[j + 16];
    }
    s += static_cast<float>(sum) * (fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d));
  }
  return s;
}

float dot_q5_1(const BlockQ5_1* x, const BlockQ8_1* y, int64_t nb) {
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    uint32_t qh;
    std::memcpy(&qh, x[i].qh, 4);
    int sum = 0;
    for (int j = 0; j < 16; ++j) {
      const int a = (x[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4);
      const int b = (x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      sum += a * y[i].qs[j] + b * y[i].qs[j + 16];
    }
    s += static_cast<float>(sum) * (fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d)) +
         fp16_to_f32(x[i].m) * fp16_to_f32(y[i].s);
  }
  return s;
}

float dot_q8_0(const BlockQ8_0* x, const BlockQ8_0* y, int64_t nb) {
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += x[i].qs[j] * y[i].qs[j];
    s += static_cast<float>(sum) * (fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d));
  }
  return s;
}

float dot_q2_k(const BlockQ2_K* x, const BlockQ8_K* y, int64_t nb) {
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int summs = 0;
    for (int j = 0; j < 16; ++j) summs += y[i].bsums[j] * (x[i].scales[j] >> 4);
    int isum = 0, is = 0;
    const uint8_t* q = x[i].qs;
    const int8_t* a = y[i].qs;
    for (int n = 0; n < 256; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int half = 0; half < 2; ++half, a += 16) {
          int sub = 0;
          for (int l = 0; l < 16; ++l) sub += a[l] * ((q[l + 16 * half] >> shift) & 3);
          isum += (x[i].scales[is++] & 0xF) * sub;
        }
      }
    }
    const float d = y[i].d * fp16_to_f32(x[i].d), dmin = y[i].d * fp16_to_f32(x[i].dmin);
    s += d * static_cast<float>(isum) - dmin * static_cast<float>(summs);
  }
  return s;
}

float dot_q3_k(const BlockQ3_K* x, const BlockQ8_K* y, int64_t nb) {
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int8_t sc[16];
    q3k_scales(x[i].scales, sc);
    const uint8_t* q = x[i].qs;
    const uint8_t* hm = x[i].hmask;
    const int8_t* a = y[i].qs;
    int isum = 0, is = 0;
    uint8_t m = 1;
    for (int n = 0; n < 256; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, m = static_cast<uint8_t>(m << 1)) {
        for (int half = 0; half < 2; ++half, a += 16) {
          int sub = 0;
          for (int l = 0; l < 16; ++l) {
            const int k = l + 16 * half;
            sub += a[l] * (((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4));
          }
          isum += sc[is++] * sub;
        }
      }
    }
    s += fp16_to_f32(x[i].d) * y[i].d * static_cast<float>(isum);
  }
  return s;
}

float dot_q4_k(const BlockQ4_K* x, const BlockQ8_K* y, int64_t nb) {
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* q = x[i].qs;
    const int8_t* a = y[i].qs;
    int isum = 0, msum = 0;
    for (int j = 0; j < 8; j += 2, q += 32) {
      uint8_t sc1, m1, sc2, m2;
      k4_scale_min(j, x[i].scales, &sc1, &m1);
      k4_scale_min(j + 1, x[i].scales, &sc2, &m2);
      int s1 = 0, s2 = 0;
      for (int l = 0; l < 32; ++l) {
        s1 += (q[l] & 0xF) * a[l];
        s2 += (q[l] >> 4) * a[l + 32];
      }
      a += 64;
      isum += sc1 * s1 + sc2 * s2;
      msum += m1 * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]) + m2 * (y[i].bsums[2 * j + 2] + y[i].bsums[2 * j + 3]);
    }
    const float d = y[i].d * fp16_to_f32(x[i].d), dmin = y[i].d * fp16_to_f32(x[i].dmin);
    s += d * static_cast<float>(isum) - dmin * static_cast<float>(msum);
  }
  return s;
}

float dot_q5_k(const BlockQ5_K* x, const BlockQ8_K* y, int64_t nb) {
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* ql = x[i].qs;
    const uint8_t* qh = x[i].qh;
    const int8_t* a = y[i].qs;
    int isum = 0, msum = 0;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 8; j += 2, ql += 32) {
      uint8_t sc1, m1, sc2, m2;
      k4_scale_min(j, x[i].scales, &sc1, &m1);
      k4_scale_min(j + 1, x[i].scales, &sc2, &m2);
      int s1 = 0, s2 = 0;
      for (int l = 0; l < 32; ++l) {
        s1 += ((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) * a[l];
        s2 += ((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) * a[l + 32];
      }
      a += 64;
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
      isum += sc1 * s1 + sc2 * s2;
      msum += m1 * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]) + m2 * (y[i].bsums[2 * j + 2] + y[i].bsums[2 * j + 3]);
    }
    const float d = y[i].d * fp16_to_f32(x[i].d), dmin = y[i].d * fp16_to_f32(x[i].dmin);
    s += d * static_cast<float>(isum) - dmin * static_cast<float>(msum);
  }
  return s;
}

float dot_q6_k(const BlockQ6_K* x, const BlockQ8_K* y, int64_t nb) {
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* sc = x[i].scales;
    const int8_t* a = y[i].qs;
    int isum = 0;
    for (int n = 0; n < 256; n += 128, ql += 64, qh += 32, sc += 8, a += 128) {
      int sub[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        sub[is] += q1 * a[l];
        sub[is + 2] += q2 * a[l + 32];
        sub[is + 4] += q3 * a[l + 64];
        sub[is + 6] += q4 * a[l + 96];
      }
      for (int k = 0; k < 8; ++k) isum += sc[k] * sub[k];
    }
    s += fp16_to_f32(x[i].d) * y[i].d * static_cast<float>(isum);
  }
  return s;
}

}  // namespace

float dot_scalar(DType w, const void* x, const void* y, int64_t n) {
  switch (w) {
    case DType::F32: return dot_f32(static_cast<const float*>(x), static_cast<const float*>(y), n);
    case DType::F16: return dot_f16(static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(y), n);
    case DType::BF16: return dot_bf16(static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(y), n);
    case DType::Q4_0: return dot_q4_0(static_cast<const BlockQ4_0*>(x), static_cast<const BlockQ8_0*>(y), n / 32);
    case DType::Q4_1: return dot_q4_1(static_cast<const BlockQ4_1*>(x), static_cast<const BlockQ8_1*>(y), n / 32);
    case DType::Q5_0: return dot_q5_0(static_cast<const BlockQ5_0*>(x), static_cast<const BlockQ8_0*>(y), n / 32);
    case DType::Q5_1: return dot_q5_1(static_cast<const BlockQ5_1*>(x), static_cast<const BlockQ8_1*>(y), n / 32);
    case DType::Q8_0: return dot_q8_0(static_cast<const BlockQ8_0*>(x), static_cast<const BlockQ8_0*>(y), n / 32);
    case DType::Q2_K: return dot_q2_k(static_cast<const BlockQ2_K*>(x), static_cast<const BlockQ8_K*>(y), n / 256);
    case DType::Q3_K: return dot_q3_k(static_cast<const BlockQ3_K*>(x), static_cast<const BlockQ8_K*>(y), n / 256);
    case DType::Q4_K: return dot_q4_k(static_cast<const BlockQ4_K*>(x), static_cast<const BlockQ8_K*>(y), n / 256);
    case DType::Q5_K: return dot_q5_k(static_cast<const BlockQ5_K*>(x), static_cast<const BlockQ8_K*>(y), n / 256);
    case DType::Q6_K: return dot_q6_k(static_cast<const BlockQ6_K*>(x), static_cast<const BlockQ8_K*>(y), n / 256);
    default: return 0.0f;  // matmul dequantizes types without a dot kernel first
  }
}

void gemm_rows_scalar(const GemmTask& t, int64_t r0, int64_t r1) {
  const Matrix& w = *t.w;
  const char* base = static_cast<const char*>(w.data);
  const char* act = static_cast<const char*>(t.act);
  for (int64_t r = r0; r < r1; ++r) {
    const void* wrow = base + static_cast<size_t>(r) * w.row_stride;
    for (int c = 0; c < t.n_cols; ++c)
      t.y[static_cast<size_t>(c) * w.rows + r] = dot_scalar(w.type, wrow, act + c * t.act_row_bytes, w.cols);
  }
}

}  // namespace tandem::kernels
