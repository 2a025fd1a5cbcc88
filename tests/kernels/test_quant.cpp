// Quant formats: hand-checked blocks from the format definition, quantize ->
// dequantize error bounds derived from each format's step size, and the dot
// kernels against dequantized math in double.
#include <gtest/gtest.h>

#include <cstring>

#include "core/fp16.h"
#include "kernels/kernels.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_internal.h"
#include "kernels/thread_pool.h"
#include "test_util.h"

namespace tandem::kernels {
namespace {
using testing::randn;
using testing::rel_rmse;

TEST(QuantFormat, HandCheckedQ4K) {
  BlockQ4_K b{};
  b.d = f32_to_fp16(1.0f);
  b.dmin = f32_to_fp16(0.5f);
  // Sub-block scales/mins (6 bits): j<4 in bytes 0..7; j>=4 low nibbles in
  // bytes 8..11 with the top 2 bits in the top of bytes 0..7.
  const uint8_t s[12] = {1 | 64, 2, 3, 4, 5, 6, 7, 8 | (2 << 6), 0x21, 0x43, 0x65, 0x87};
  std::memcpy(b.scales, s, 12);
  // -> sc = {1,2,3,4,17,3,5,7}, m = {5,6,7,8,2,4,6,40}
  for (int i = 0; i < 128; ++i) b.qs[i] = static_cast<uint8_t>((i % 16) | (((i * 7) % 16) << 4));
  float y[256];
  dequantize_row(DType::Q4_K, &b, y, 256);
  // element 0: sub-block 0, low nibble of qs[0] = 0 -> 1*1*0 - 0.5*5
  EXPECT_FLOAT_EQ(y[0], -2.5f);
  // element 33: sub-block 1, high nibble of qs[1] = 7 -> 2*7 - 0.5*6
  EXPECT_FLOAT_EQ(y[33], 11.0f);
  // element 100: sub-block 3, high nibble of qs[36] = 12 -> 4*12 - 0.5*8
  EXPECT_FLOAT_EQ(y[100], 44.0f);
  // element 130: sub-block 4 (scale 1 | 1<<4 = 17, min 2), low nibble of qs[66] = 2
  EXPECT_FLOAT_EQ(y[130], 33.0f);
  // element 200: sub-block 6 (scale 5, min 6), low nibble of qs[104] = 8
  EXPECT_FLOAT_EQ(y[200], 37.0f);
  // element 255: sub-block 7 (scale 7, min 8 | 2<<4 = 40), high nibble of qs[127] = 9
  EXPECT_FLOAT_EQ(y[255], 43.0f);
}

TEST(QuantFormat, HandCheckedQ6K) {
  BlockQ6_K b{};
  b.d = f32_to_fp16(0.5f);
  for (int i = 0; i < 16; ++i) b.scales[i] = static_cast<int8_t>(i - 8);
  for (int i = 0; i < 128; ++i) b.ql[i] = static_cast<uint8_t>((i * 5) & 0xFF);
  for (int i = 0; i < 64; ++i) b.qh[i] = static_cast<uint8_t>((i * 37) & 0xFF);
  float y[256];
  dequantize_row(DType::Q6_K, &b, y, 256);
  // e0: low nibble ql[0]=0, qh[0] bits0-1 = 0 -> q=-32, scale[0]=-8 -> 0.5*-8*-32
  EXPECT_FLOAT_EQ(y[0], 128.0f);
  // e1: ql[1]=5 -> 5, qh[1]=37 bits0-1 = 1 -> q=21-32=-11, scale[0]=-8
  EXPECT_FLOAT_EQ(y[1], 44.0f);
  // e45: quarter 1, l=13: low nibble ql[45]=225 -> 1, qh[13]=225 bits2-3 = 0 -> -31, scale[2]=-6
  EXPECT_FLOAT_EQ(y[45], 93.0f);
  // e90: quarter 2, l=26: high nibble ql[26]=130 -> 8, qh[26]=194 bits4-5 = 0 -> -24, scale[5]=-3
  EXPECT_FLOAT_EQ(y[90], 36.0f);
  // e98: quarter 3, l=2: high nibble ql[34]=170 -> 10, qh[2]=74 bits6-7 = 1 -> 26-32=-6, scale[6]=-2
  EXPECT_FLOAT_EQ(y[98], 6.0f);
  // e200: second half, quarter 2, l=8: high nibble ql[72]=104 -> 6, qh[40]=200 bits4-5=0 -> -26, scale[12]=4
  EXPECT_FLOAT_EQ(y[200], -52.0f);
  // e255: second half, quarter 3, l=31: high nibble ql[127]=123 -> 7, qh[63]=27 bits6-7=0 -> -25, scale[15]=7
  EXPECT_FLOAT_EQ(y[255], -87.5f);
}

TEST(QuantFormat, HandCheckedQ4_0AndQ5_0) {
  BlockQ4_0 b{};
  b.d = f32_to_fp16(0.25f);
  for (int i = 0; i < 16; ++i) b.qs[i] = static_cast<uint8_t>(i | ((15 - i) << 4));
  float y[32];
  dequantize_row(DType::Q4_0, &b, y, 32);
  EXPECT_FLOAT_EQ(y[0], (0 - 8) * 0.25f);
  EXPECT_FLOAT_EQ(y[15], (15 - 8) * 0.25f);
  EXPECT_FLOAT_EQ(y[16], (15 - 8) * 0.25f);  // high nibble of qs[0]
  EXPECT_FLOAT_EQ(y[31], (0 - 8) * 0.25f);

  BlockQ5_0 c{};
  c.d = f32_to_fp16(2.0f);
  for (int i = 0; i < 16; ++i) c.qs[i] = 0x31;     // low 1, high 3
  const uint32_t qh = (1u << 0) | (1u << 17);     // 5th bit of element 0 and element 17
  std::memcpy(c.qh, &qh, 4);
  dequantize_row(DType::Q5_0, &c, y, 32);
  EXPECT_FLOAT_EQ(y[0], ((1 | 16) - 16) * 2.0f);
  EXPECT_FLOAT_EQ(y[1], (1 - 16) * 2.0f);
  EXPECT_FLOAT_EQ(y[16], (3 - 16) * 2.0f);
  EXPECT_FLOAT_EQ(y[17], ((3 | 16) - 16) * 2.0f);
}

struct Bound {
  DType t;
  double max_rel_rmse;  // from the format's step size on N(0,1) data
};

// Step-size reasoning: b-bit round-to-nearest of a block whose range is ~4.2
// sigma gives rms error ~ range / 2^b / sqrt(12); bounds leave ~1.5-2x margin.
const Bound kBounds[] = {
    {DType::F16, 5e-4},  {DType::BF16, 4e-3}, {DType::Q8_0, 0.01}, {DType::Q8_K, 0.01},
    {DType::Q6_K, 0.03}, {DType::Q5_0, 0.06}, {DType::Q5_1, 0.06}, {DType::Q5_K, 0.06},
    {DType::Q4_0, 0.12}, {DType::Q4_1, 0.12}, {DType::Q4_K, 0.12}, {DType::Q3_K, 0.25},
    {DType::Q2_K, 0.5},
};

TEST(QuantFormat, RoundTripErrorWithinFormatBound) {
  const int64_t n = 4096;
  std::vector<float> x = randn(n, 7);
  for (const Bound& b : kBounds) {
    std::vector<unsigned char> q(row_bytes(b.t, n));
    ASSERT_TRUE(quantize_row(b.t, x.data(), q.data(), n)) << dtype_name(b.t);
    std::vector<float> y(n);
    dequantize_row(b.t, q.data(), y.data(), n);
    const double e = rel_rmse(y.data(), x.data(), n);
    EXPECT_LT(e, b.max_rel_rmse) << dtype_name(b.t);
    EXPECT_GT(e, 0.0) << dtype_name(b.t);  // lossy formats are not identity
  }
}

TEST(QuantFormat, ZeroAndConstantBlocks) {
  const int64_t n = 512;
  for (const Bound& b : kBounds) {
    std::vector<float> x(n, 0.0f);
    std::vector<unsigned char> q(row_bytes(b.t, n));
    ASSERT_TRUE(quantize_row(b.t, x.data(), q.data(), n));
    std::vector<float> y(n, 1.0f);
    dequantize_row(b.t, q.data(), y.data(), n);
    for (float v : y) ASSERT_EQ(v, 0.0f) << dtype_name(b.t);
  }
}

// Truth for matmul: dequantize W and the activations in their dot format,
// multiply in double.
void expect_matmul_matches_dequantized(DType t, int64_t rows, int64_t cols, int n_cols, ThreadPool& pool) {
  std::vector<float> wf = randn(static_cast<size_t>(rows * cols), 11);
  const size_t rb = row_bytes(t, cols);
  std::vector<unsigned char> wq(rb * rows);
  for (int64_t r = 0; r < rows; ++r) ASSERT_TRUE(quantize_row(t, wf.data() + r * cols, wq.data() + r * rb, cols));
  std::vector<float> x = randn(static_cast<size_t>(n_cols * cols), 12);
  Matrix m{t, wq.data(), rows, cols, rb};
  std::vector<float> y(static_cast<size_t>(n_cols * rows));
  matmul(m, x.data(), n_cols, y.data(), pool);

  const DType at = act_type_for(t);
  std::vector<float> wd(static_cast<size_t>(rows * cols)), xd(static_cast<size_t>(n_cols * cols));
  for (int64_t r = 0; r < rows; ++r) dequantize_row(t, wq.data() + r * rb, wd.data() + r * cols, cols);
  std::vector<unsigned char> aq(row_bytes(at, cols));
  for (int c = 0; c < n_cols; ++c) {
    quantize_act_row_scalar(at, x.data() + c * cols, aq.data(), cols);
    dequantize_row(at, aq.data(), xd.data() + c * cols, cols);
  }
  // Q8_1 carries s = fp16(d * sum(q)) and the _1 dots use it for the min term
  // (format semantics): correct the exact sum by m * (s - d*sum(q)) per block.
  std::vector<double> s_err(static_cast<size_t>(n_cols * cols / 32), 0.0);
  if (at == DType::Q8_1) {
    for (int c = 0; c < n_cols; ++c) {
      quantize_act_row_scalar(at, x.data() + c * cols, aq.data(), cols);
      const BlockQ8_1* b = reinterpret_cast<const BlockQ8_1*>(aq.data());
      for (int64_t j = 0; j < cols / 32; ++j) {
        int sum = 0;
        for (int k = 0; k < 32; ++k) sum += b[j].qs[k];
        s_err[c * (cols / 32) + j] = double(fp16_to_f32(b[j].s)) - double(fp16_to_f32(b[j].d)) * sum;
      }
    }
  }
  for (int c = 0; c < n_cols; ++c) {
    for (int64_t r = 0; r < rows; ++r) {
      double ref = 0, mag = 0;
      for (int64_t k = 0; k < cols; ++k) {
        ref += double(wd[r * cols + k]) * xd[c * cols + k];
        mag += std::fabs(double(wd[r * cols + k]) * xd[c * cols + k]);
      }
      if (at == DType::Q8_1) {
        for (int64_t j = 0; j < cols / 32; ++j) {
          const unsigned char* blk = wq.data() + r * rb + j * dtype_info(t).block_bytes;
          uint16_t m;
          std::memcpy(&m, blk + 2, 2);  // Q4_1/Q5_1: {d, m, ...}
          ref += double(fp16_to_f32(m)) * s_err[c * (cols / 32) + j];
        }
      }
      ASSERT_NEAR(y[c * rows + r], ref, 1e-5 * mag + 1e-6)
          << dtype_name(t) << " row " << r << " col " << c << " path " << cpu_path_name(active_cpu_path());
    }
  }
}

const DType kWeightTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                              DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K,
                              DType::Q4_K, DType::Q5_K, DType::Q6_K};

TEST(Matmul, MatchesDequantizedMathOnEveryPath) {
  testing::PathGuard guard;
  ThreadPool pool(2);
  for (CpuPath p : available_cpu_paths()) {
    force_cpu_path(p);
    for (DType t : kWeightTypes) {
      for (int64_t rows : {1, 3, 31, 40}) {
        for (int n_cols : {1, 3, 8, 13}) expect_matmul_matches_dequantized(t, rows, 512, n_cols, pool);
      }
    }
  }
}

TEST(Matmul, QuantizedActivationsCloseToFloatMath) {
  // Sanity of the whole chain: the activation rounding costs little accuracy.
  ThreadPool pool(1);
  const int64_t rows = 16, cols = 1024;
  std::vector<float> wf = randn(rows * cols, 3), x = randn(cols, 4);
  for (DType t : kWeightTypes) {
    const size_t rb = row_bytes(t, cols);
    std::vector<unsigned char> wq(rb * rows);
    std::vector<float> wd(rows * cols);
    for (int64_t r = 0; r < rows; ++r) {
      quantize_row(t, wf.data() + r * cols, wq.data() + r * rb, cols);
      dequantize_row(t, wq.data() + r * rb, wd.data() + r * cols, cols);
    }
    std::vector<float> y(rows), ref(rows);
    matmul(Matrix{t, wq.data(), rows, cols, rb}, x.data(), 1, y.data(), pool);
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (int64_t k = 0; k < cols; ++k) s += double(wd[r * cols + k]) * x[k];
      ref[r] = static_cast<float>(s);
    }
    // Q8 activation error ~0.5% of a random-sign sum of 1024 terms.
    EXPECT_LT(rel_rmse(y.data(), ref.data(), rows), 0.02) << dtype_name(t);
  }
}

TEST(Matmul, GetRowDequantizes) {
  const int64_t rows = 5, cols = 256;
  std::vector<float> wf = randn(rows * cols, 5);
  const size_t rb = row_bytes(DType::Q6_K, cols);
  std::vector<unsigned char> wq(rb * rows);
  for (int64_t r = 0; r < rows; ++r) quantize_row(DType::Q6_K, wf.data() + r * cols, wq.data() + r * rb, cols);
  std::vector<float> a(cols), b(cols);
  get_row(Matrix{DType::Q6_K, wq.data(), rows, cols, rb}, 3, a.data());
  dequantize_row(DType::Q6_K, wq.data() + 3 * rb, b.data(), cols);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace tandem::kernels
