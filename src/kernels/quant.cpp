// Scalar dequantizers and the simple quantizers (F16, BF16, Q4_0 ... Q8_1),
// block layouts as GGUF stores them (quant_blocks.h).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_internal.h"

namespace tandem::kernels {
namespace {

void deq_q4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((b[i].qs[j] & 0xF) - 8) * d;
      y[j + 16] = static_cast<float>((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void deq_q4_1(const BlockQ4_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = fp16_to_f32(b[i].d), m = fp16_to_f32(b[i].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(b[i].qs[j] & 0xF) * d + m;
      y[j + 16] = static_cast<float>(b[i].qs[j] >> 4) * d + m;
    }
  }
}

void deq_q5_0(const BlockQ5_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = fp16_to_f32(b[i].d);
    uint32_t qh;
    std::memcpy(&qh, b[i].qh, 4);
    for (int j = 0; j < 16; ++j) {
      const int h0 = ((qh >> j) & 1) << 4, h1 = ((qh >> (j + 16)) & 1) << 4;
      y[j] = static_cast<float>(((b[i].qs[j] & 0xF) | h0) - 16) * d;
      y[j + 16] = static_cast<float>(((b[i].qs[j] >> 4) | h1) - 16) * d;
    }
  }
}

void deq_q5_1(const BlockQ5_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = fp16_to_f32(b[i].d), m = fp16_to_f32(b[i].m);
    uint32_t qh;
    std::memcpy(&qh, b[i].qh, 4);
    for (int j = 0; j < 16; ++j) {
      const int h0 = ((qh >> j) & 1) << 4, h1 = ((qh >> (j + 16)) & 1) << 4;
      y[j] = static_cast<float>((b[i].qs[j] & 0xF) | h0) * d + m;
      y[j + 16] = static_cast<float>((b[i].qs[j] >> 4) | h1) * d + m;
    }
  }
}

void deq_q8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

void deq_q8_1(const BlockQ8_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

void deq_q2_k(const BlockQ2_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    int is = 0;
    for (int n = 0; n < 256; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int half = 0; half < 2; ++half) {
          const uint8_t sc = b[i].scales[is++];
          const float dl = d * static_cast<float>(sc & 0xF), ml = dmin * static_cast<float>(sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[l + 16 * half] >> shift) & 3) - ml;
        }
      }
    }
  }
}

void deq_q3_k(const BlockQ3_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d);
    int8_t sc[16];
    q3k_scales(b[i].scales, sc);
    const uint8_t* q = b[i].qs;
    const uint8_t* hm = b[i].hmask;
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < 256; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, m = static_cast<uint8_t>(m << 1)) {
        for (int half = 0; half < 2; ++half) {
          const float dl = d * static_cast<float>(sc[is++]);
          for (int l = 16 * half; l < 16 * half + 16; ++l) {
            const int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
            *y++ = dl * static_cast<float>(v);
          }
        }
      }
    }
  }
}

void deq_q4_k(const BlockQ4_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int j = 0; j < 8; j += 2, q += 32) {
      uint8_t sc, m;
      k4_scale_min(j, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      k4_scale_min(j + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

void deq_q5_k(const BlockQ5_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
    const uint8_t* ql = b[i].qs;
    const uint8_t* qh = b[i].qh;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 8; j += 2, ql += 32) {
      uint8_t sc, m;
      k4_scale_min(j, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      k4_scale_min(j + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

void deq_q6_k(const BlockQ6_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d);
    const uint8_t* ql = b[i].ql;
    const uint8_t* qh = b[i].qh;
    const int8_t* sc = b[i].scales;
    for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

void deq_q8_k(const BlockQ8_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 256)
    for (int j = 0; j < 256; ++j) y[j] = b[i].d * static_cast<float>(b[i].qs[j]);
}

// ---- simple quantizers (ggml reference math)

void q_q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j)
      if (amax < std::fabs(x[j])) { amax = std::fabs(x[j]); max = x[j]; }
    const float d = max / -8, id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    for (int j = 0; j < 16; ++j) {
      const int a = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      const int b = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
      y[i].qs[j] = static_cast<uint8_t>(a | (b << 4));
    }
  }
}

void q_q4_1(const float* x, BlockQ4_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float mn = x[0], mx = x[0];
    for (int j = 1; j < 32; ++j) { mn = std::min(mn, x[j]); mx = std::max(mx, x[j]); }
    const float d = (mx - mn) / 15, id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    y[i].m = f32_to_fp16(mn);
    for (int j = 0; j < 16; ++j) {
      const int a = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - mn) * id + 0.5f)));
      const int b = std::min(15, static_cast<int>(static_cast<int8_t>((x[j + 16] - mn) * id + 0.5f)));
      y[i].qs[j] = static_cast<uint8_t>(a | (b << 4));
    }
  }
}

template <bool kHasMin, typename Block>
void q_q5(const float* x, Block* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float d, mn = 0;
    if constexpr (kHasMin) {
      float mx = x[0];
      mn = x[0];
      for (int j = 1; j < 32; ++j) { mn = std::min(mn, x[j]); mx = std::max(mx, x[j]); }
      d = (mx - mn) / 31;
      y[i].m = f32_to_fp16(mn);
    } else {
      float amax = 0, max = 0;
      for (int j = 0; j < 32; ++j)
        if (amax < std::fabs(x[j])) { amax = std::fabs(x[j]); max = x[j]; }
      d = max / -16;
    }
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      int a, b;
      if constexpr (kHasMin) {
        a = std::min(31, static_cast<int>((x[j] - mn) * id + 0.5f));
        b = std::min(31, static_cast<int>((x[j + 16] - mn) * id + 0.5f));
      } else {
        a = std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f)));
        b = std::min(31, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 16.5f)));
      }
      y[i].qs[j] = static_cast<uint8_t>((a & 0xF) | ((b & 0xF) << 4));
      qh |= static_cast<uint32_t>((a >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((b >> 4) & 1) << (j + 16);
    }
    std::memcpy(y[i].qh, &qh, 4);
  }
}

// Q8_0 for weights: ggml's reference (d = amax/127, round half away from zero).
void q_q8_0_ref(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    for (int j = 0; j < 32; ++j) y[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

// Q8_0 / Q8_1 for activations: the reference engine's x86 quantizer
// (multiply by 127/amax, round half to even). SIMD twins must match bit for bit.
void q_act_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f, id = amax != 0 ? 127.f / amax : 0.0f;
    y[i].d = f32_to_fp16(d);
    for (int j = 0; j < 32; ++j) y[i].qs[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
  }
}

void q_act_q8_1(const float* x, BlockQ8_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f, id = amax != 0 ? 127.f / amax : 0.0f;
    y[i].d = f32_to_fp16(d);
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      y[i].qs[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
      sum += y[i].qs[j];
    }
    y[i].s = f32_to_fp16(d * static_cast<float>(sum));
  }
}

}  // namespace

void dequantize_row_scalar(DType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case DType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(s[i]);
      return;
    }
    case DType::BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::Q4_0: return deq_q4_0(static_cast<const BlockQ4_0*>(src), dst, n / 32);
    case DType::Q4_1: return deq_q4_1(static_cast<const BlockQ4_1*>(src), dst, n / 32);
    case DType::Q5_0: return deq_q5_0(static_cast<const BlockQ5_0*>(src), dst, n / 32);
    case DType::Q5_1: return deq_q5_1(static_cast<const BlockQ5_1*>(src), dst, n / 32);
    case DType::Q8_0: return deq_q8_0(static_cast<const BlockQ8_0*>(src), dst, n / 32);
    case DType::Q8_1: return deq_q8_1(static_cast<const BlockQ8_1*>(src), dst, n / 32);
    case DType::Q2_K: return deq_q2_k(static_cast<const BlockQ2_K*>(src), dst, n / 256);
    case DType::Q3_K: return deq_q3_k(static_cast<const BlockQ3_K*>(src), dst, n / 256);
    case DType::Q4_K: return deq_q4_k(static_cast<const BlockQ4_K*>(src), dst, n / 256);
    case DType::Q5_K: return deq_q5_k(static_cast<const BlockQ5_K*>(src), dst, n / 256);
    case DType::Q6_K: return deq_q6_k(static_cast<const BlockQ6_K*>(src), dst, n / 256);
    case DType::Q8_K: return deq_q8_k(static_cast<const BlockQ8_K*>(src), dst, n / 256);
    default: break;
  }
  // Unsupported type: callers check can_dequantize(); make the failure visible.
  for (int64_t i = 0; i < n; ++i) dst[i] = std::nanf("");
}

bool quantize_row_scalar(DType t, const float* src, void* dst, int64_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return true;
    case DType::F16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_fp16(src[i]);
      return true;
    }
    case DType::BF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return true;
    }
    case DType::Q4_0: q_q4_0(src, static_cast<BlockQ4_0*>(dst), n / 32); return true;
    case DType::Q4_1: q_q4_1(src, static_cast<BlockQ4_1*>(dst), n / 32); return true;
    case DType::Q5_0: q_q5<false>(src, static_cast<BlockQ5_0*>(dst), n / 32); return true;
    case DType::Q5_1: q_q5<true>(src, static_cast<BlockQ5_1*>(dst), n / 32); return true;
    case DType::Q8_0: q_q8_0_ref(src, static_cast<BlockQ8_0*>(dst), n / 32); return true;
    case DType::Q8_1: q_act_q8_1(src, static_cast<BlockQ8_1*>(dst), n / 32); return true;
    case DType::Q2_K: quantize_row_q2_k(src, dst, n); return true;
    case DType::Q3_K: quantize_row_q3_k(src, dst, n); return true;
    case DType::Q4_K: quantize_row_q4_k(src, dst, n); return true;
    case DType::Q5_K: quantize_row_q5_k(src, dst, n); return true;
    case DType::Q6_K: quantize_row_q6_k(src, dst, n); return true;
    case DType::Q8_K: quantize_row_q8_k(src, dst, n); return true;
    default: return false;
  }
}

void quantize_act_row_scalar(DType act, const float* x, void* dst, int64_t n) {
  switch (act) {
    case DType::Q8_0: q_act_q8_0(x, static_cast<BlockQ8_0*>(dst), n / 32); return;
    case DType::Q8_1: q_act_q8_1(x, static_cast<BlockQ8_1*>(dst), n / 32); return;
    case DType::Q8_K: quantize_row_q8_k(x, dst, n); return;
    default: quantize_row_scalar(act, x, dst, n); return;
  }
}

DType act_type_for(DType w) {
  switch (w) {
    case DType::F16: return DType::F16;
    case DType::BF16: return DType::BF16;
    case DType::Q4_0: case DType::Q5_0: case DType::Q8_0: return DType::Q8_0;
    case DType::Q4_1: case DType::Q5_1: return DType::Q8_1;
    case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
      return DType::Q8_K;
    default: return DType::F32;
  }
}

bool has_dot(DType w) {
  switch (w) {
    case DType::F32: case DType::F16: case DType::BF16: case DType::Q4_0: case DType::Q4_1:
    case DType::Q5_0: case DType::Q5_1: case DType::Q8_0: case DType::Q2_K: case DType::Q3_K:
    case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
      return true;
    default: return false;
  }
}

bool can_dequantize(DType t) {
  switch (t) {
    case DType::F32: case DType::F16: case DType::BF16: case DType::Q4_0: case DType::Q4_1:
    case DType::Q5_0: case DType::Q5_1: case DType::Q8_0: case DType::Q8_1: case DType::Q2_K:
    case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: case DType::Q8_K:
      return true;
    default: return false;
  }
}

bool can_quantize(DType t) { return can_dequantize(t); }

}  // namespace tandem::kernels
