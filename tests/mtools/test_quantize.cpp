// tandem quantize against the reference engine's quantizer: the fixtures hold
// tiny-granitehybrid-256 in F32 and as the reference quantized it (F16, BF16,
// Q8_0, Q4_0, Q4_K_M, Q5_K_M, Q6_K). Quantizing the F32 file ourselves must
// choose the same type for every tensor (incl. the K_M mixes and the Mamba
// tensors kept F32) and produce the same bytes (the reference quantizers are
// deterministic), and dequantized error within each format's bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "model/tools/quantize.h"
#include "tmpdir.h"

namespace tandem::model {
namespace {

using mtools_test::kModels;

std::vector<float> dequant(const gguf::TensorInfo& t) {
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  const int64_t row = t.shape[0], rows = t.n_elements() / row;
  const size_t rb = row_bytes(t.type, row);
  for (int64_t r = 0; r < rows; ++r) {
    kernels::dequantize_row(t.type, static_cast<const uint8_t*>(t.data) + r * rb, out.data() + r * row, row);
  }
  return out;
}

double rmse(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return std::sqrt(s / static_cast<double>(a.size()));
}

struct Case {
  const char* type;
  bool expect_identical;  // deterministic round-to-nearest formats
};

class QuantizeVsReference : public ::testing::TestWithParam<Case> {};

TEST_P(QuantizeVsReference, SameTypesAndBytes) {
  const Case c = GetParam();
  mtools_test::TempDir dir;
  auto target = parse_quant_target(c.type);
  ASSERT_TRUE(target.is_ok());
  const std::string out = dir.file("out.gguf");
  auto stats = quantize_gguf(kModels + "tiny-granitehybrid-256.gguf", out, *target);
  ASSERT_TRUE(stats.is_ok()) << stats.status().to_string();

  auto got = gguf::File::open(out);
  auto ref = gguf::File::open(kModels + "tiny-granitehybrid-256-" + c.type + ".gguf");
  auto src = gguf::File::open(kModels + "tiny-granitehybrid-256.gguf");
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  ASSERT_TRUE(ref.is_ok()) << ref.status().to_string();
  ASSERT_TRUE(src.is_ok());
  EXPECT_EQ((*got)->get_int("general.file_type").value(), (*ref)->get_int("general.file_type").value());
  // Every metadata key of the source is carried over unchanged.
  for (const auto& [key, value] : (*src)->metadata()) {
    const gguf::Value* v = (*got)->find(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_TRUE(*v == value) << key;
  }

  ASSERT_EQ((*got)->tensors().size(), (*ref)->tensors().size());
  size_t bytes_same = 0, bytes_total = 0;
  int tensors_same = 0;
  for (const gguf::TensorInfo& r : (*ref)->tensors()) {
    const gguf::TensorInfo* g = (*got)->find_tensor(r.name);
    ASSERT_NE(g, nullptr) << r.name;
    EXPECT_EQ(dtype_name(g->type), dtype_name(r.type)) << r.name;
    ASSERT_EQ(g->n_elements(), r.n_elements()) << r.name;
    if (g->type != r.type) continue;
    ASSERT_EQ(g->bytes, r.bytes) << r.name;
    const auto* a = static_cast<const uint8_t*>(g->data);
    const auto* b = static_cast<const uint8_t*>(r.data);
    size_t same = 0;
    for (size_t i = 0; i < r.bytes; ++i) same += a[i] == b[i];
    bytes_same += same;
    bytes_total += r.bytes;
    tensors_same += same == r.bytes;
    if (c.expect_identical) {
      EXPECT_EQ(same, r.bytes) << r.name << " differs from the reference";
    }

    // Error against the F32 original: ours no worse than the reference's (+1%).
    const gguf::TensorInfo* s = (*src)->find_tensor(r.name);
    ASSERT_NE(s, nullptr);
    std::vector<float> orig = dequant(*s), ours = dequant(*g), theirs = dequant(r);
    const double e_ours = rmse(ours, orig), e_ref = rmse(theirs, orig);
    EXPECT_LE(e_ours, e_ref * 1.01 + 1e-9) << r.name;
  }
  const double frac = static_cast<double>(bytes_same) / static_cast<double>(bytes_total);
  std::printf("[%s] tensors identical to the reference: %d/%zu, bytes identical: %.6f\n", c.type,
              tensors_same, (*ref)->tensors().size(), frac);
  // The k-quant searches are deterministic too; allow nothing but float-order noise.
  EXPECT_GE(frac, 0.999) << c.type;
}

INSTANTIATE_TEST_SUITE_P(Types, QuantizeVsReference,
                         ::testing::Values(Case{"q8_0", true}, Case{"q4_0", true}, Case{"f16", true},
                                           Case{"bf16", true}, Case{"q4_k_m", false},
                                           Case{"q5_k_m", false}, Case{"q6_k", false}),
                         [](const auto& info) { return std::string(info.param.type); });

// Types without a reference file: the right types are chosen and the
// round trip error stays within each format's bound relative to the row's
// largest magnitude (half a quantization step of the block scale).
TEST(Quantize, OtherTypesWithinFormatBounds) {
  struct B {
    const char* type;
    DType base;
    double max_rel;  // max |err| / max |x| over a block
  };
  // q4_1/q5_1 span [min,max] in 15/31 steps: error <= range/(2*steps) <= amax/steps. q5_0 uses
  // d = -max/16 for the signed extreme, so the opposite extreme clamps at 15 steps: error <= amax/16.
  const B cases[] = {{"q4_1", DType::Q4_1, 1.0 / 15 + 1e-3},
                     {"q5_0", DType::Q5_0, 1.0 / 16 + 2e-3},
                     {"q5_1", DType::Q5_1, 1.0 / 31 + 1e-3},
                     {"q4_k", DType::Q4_K, 0.15},
                     {"q5_k", DType::Q5_K, 0.08},
                     {"f32", DType::F32, 0.0}};
  auto src = gguf::File::open(kModels + "tiny-granitehybrid-256.gguf");
  ASSERT_TRUE(src.is_ok());
  for (const B& c : cases) {
    mtools_test::TempDir dir;
    auto target = parse_quant_target(c.type);
    ASSERT_TRUE(target.is_ok());
    auto stats = quantize_gguf(kModels + "tiny-granitehybrid-256.gguf", dir.file("o.gguf"), *target);
    ASSERT_TRUE(stats.is_ok()) << c.type << ": " << stats.status().to_string();
    auto got = gguf::File::open(dir.file("o.gguf"));
    ASSERT_TRUE(got.is_ok());
    for (const gguf::TensorInfo& t : (*got)->tensors()) {
      const gguf::TensorInfo* s = (*src)->find_tensor(t.name);
      ASSERT_NE(s, nullptr);
      if (!is_quantizable(t.name, t.shape)) {
        EXPECT_EQ(t.type, s->type) << c.type << " " << t.name << " must be kept";
        EXPECT_EQ(std::memcmp(t.data, s->data, s->bytes), 0) << t.name;
        continue;
      }
      if (t.name != "token_embd.weight" && t.name.find("attn_v") == std::string::npos &&
          t.name.find("ffn_down") == std::string::npos) {
        EXPECT_EQ(t.type, c.base) << c.type << " " << t.name;
      }
      std::vector<float> orig = dequant(*s), ours = dequant(t);
      const int64_t blk = dtype_info(t.type).block_elems > 1 ? 32 : 1;
      for (size_t b0 = 0; b0 < orig.size(); b0 += blk) {
        float amax = 0, emax = 0;
        for (int64_t j = 0; j < blk; ++j) {
          amax = std::max(amax, std::fabs(orig[b0 + j]));
          emax = std::max(emax, std::fabs(orig[b0 + j] - ours[b0 + j]));
        }
        if (t.type == c.base) {
          ASSERT_LE(emax, c.max_rel * amax + 1e-7) << c.type << " " << t.name << " block " << b0 / blk;
        }
      }
    }
  }
}

TEST(Quantize, PlannerRules) {
  auto t = parse_quant_target("Q4_K_M");
  ASSERT_TRUE(t.is_ok());
  EXPECT_EQ(t->file_type, 15u);
  EXPECT_FALSE(parse_quant_target("q3_k").is_ok());
  // use_more_bits over 8 ffn_down tensors: i < 1, i >= 7, (i - 1) % 3 == 2 -> {0, 3, 6, 7}.
  TypePlanner p(*t);
  for (int i = 0; i < 8; ++i) p.count(fmt::format("blk.{}.ffn_down.weight", i));
  p.count("output.weight");
  std::vector<int> promoted;
  for (int i = 0; i < 8; ++i) {
    if (p.type_for(fmt::format("blk.{}.ffn_down.weight", i), {256, 256}, DType::F32) == DType::Q6_K) {
      promoted.push_back(i);
    }
  }
  EXPECT_EQ(promoted, (std::vector<int>{0, 3, 6, 7}));
  EXPECT_EQ(p.type_for("output.weight", {256, 512}, DType::F32), DType::Q6_K);
  EXPECT_EQ(p.type_for("output.weight", {64, 512}, DType::F32), DType::Q8_0);   // rows not /256
  EXPECT_EQ(p.type_for("token_embd.weight", {256, 512}, DType::F32), DType::Q4_K);  // output is separate
  EXPECT_EQ(p.type_for("blk.0.ssm_in.weight", {96, 512}, DType::F32), DType::Q5_0);  // Q4_K fallback
  EXPECT_EQ(p.type_for("blk.0.ssm_conv1d.weight", {4, 640}, DType::F32), DType::F32);
  EXPECT_EQ(p.type_for("blk.0.ssm_a", {1, 16}, DType::F32), DType::F32);
  EXPECT_EQ(p.type_for("blk.0.ssm_norm.weight", {512, 1}, DType::F32), DType::F32);
}

TEST(Quantize, MissingInputFails) {
  mtools_test::TempDir dir;
  auto st = quantize_gguf(dir.file("nope.gguf"), dir.file("o.gguf"), parse_quant_target("q8_0").value());
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.status().message().find("nope.gguf"), std::string::npos);
  EXPECT_TRUE(dir.entries().empty());
}

}  // namespace
}  // namespace tandem::model
