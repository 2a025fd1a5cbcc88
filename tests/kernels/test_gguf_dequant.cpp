// Dequantizing the reference engine's quantized fixtures: every tensor of
// tiny-granitehybrid-256-{type}.gguf against the same tensor of the F32 file.
// F16/BF16 must be the exact rounding of the F32 values; quantized tensors
// must (a) be byte-identical to what our reference-math quantizer writes from
// the F32 data where the format has a deterministic reference quantizer and
// (b) dequantize within the format's error bound.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>

#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "test_util.h"

namespace tandem::kernels {
namespace {

std::string fixture(const std::string& name) { return std::string(TANDEM_FIXTURES) + "/models/" + name; }

double bound_for(DType t) {
  switch (t) {
    case DType::F16: return 5e-4;
    case DType::BF16: return 4e-3;
    case DType::Q8_0: return 0.01;
    case DType::Q6_K: return 0.03;
    case DType::Q5_0: case DType::Q5_1: case DType::Q5_K: return 0.06;
    case DType::Q4_0: case DType::Q4_1: case DType::Q4_K: return 0.12;
    case DType::Q3_K: return 0.25;
    case DType::Q2_K: return 0.5;
    default: return 0.0;
  }
}

class GgufDequant : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufDequant, TensorsMatchF32File) {
  auto ref = gguf::File::open(fixture("tiny-granitehybrid-256.gguf"));
  ASSERT_TRUE(ref.is_ok()) << ref.status().message();
  auto q = gguf::File::open(fixture(std::string("tiny-granitehybrid-256-") + GetParam() + ".gguf"));
  ASSERT_TRUE(q.is_ok()) << q.status().message();
  std::map<DType, int> checked, byte_exact;
  for (const gguf::TensorInfo& t : (*q)->tensors()) {
    const gguf::TensorInfo* r = (*ref)->find_tensor(t.name);
    ASSERT_NE(r, nullptr) << t.name;
    ASSERT_EQ(r->type, DType::F32) << t.name;
    ASSERT_EQ(r->shape[0], t.shape[0]) << t.name;  // (converters may drop trailing 1 dims)
    ASSERT_EQ(r->n_elements(), t.n_elements()) << t.name;
    if (t.type == DType::F32) continue;
    ASSERT_TRUE(can_dequantize(t.type)) << t.name << " " << dtype_name(t.type);
    const int64_t n = t.n_elements(), cols = t.shape[0], rows = n / cols;
    const size_t rb = row_bytes(t.type, cols);
    std::vector<float> y(static_cast<size_t>(n));
    for (int64_t i = 0; i < rows; ++i)
      dequantize_row(t.type, static_cast<const char*>(t.data) + i * rb, y.data() + i * cols, cols);
    const float* x = static_cast<const float*>(r->data);
    const double e = testing::rel_rmse(y.data(), x, static_cast<size_t>(n));
    EXPECT_LT(e, bound_for(t.type)) << t.name << " " << dtype_name(t.type);
    // Re-quantize the F32 tensor with our reference-math quantizer.
    std::vector<unsigned char> mine(rb * rows);
    for (int64_t i = 0; i < rows; ++i) ASSERT_TRUE(quantize_row(t.type, x + i * cols, mine.data() + i * rb, cols));
    const bool same = std::memcmp(mine.data(), t.data, mine.size()) == 0;
    {  // every fixture tensor type has a deterministic reference quantizer
      EXPECT_TRUE(same) << t.name << " " << dtype_name(t.type) << ": bytes differ from the reference quantizer";
    }
    checked[t.type]++;
    byte_exact[t.type] += same;
  }
  EXPECT_FALSE(checked.empty());
  for (auto [type, count] : checked)
    std::printf("%s: %s %d tensors, %d byte-identical to our quantizer\n", GetParam(),
                std::string(dtype_name(type)).c_str(), count, byte_exact[type]);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GgufDequant,
                         ::testing::Values("q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k", "f16", "bf16"));

}  // namespace
}  // namespace tandem::kernels
