// gen-model: the `tiny` preset has the same configuration as the reference
// engine's tiny-granitehybrid-256.gguf, so its tensors (names, order, shapes,
// types) and its hyper-parameter keys must match that file exactly; the
// q4_k_m mix must choose the reference quantizer's types. Values follow the
// stated distributions; generation is deterministic per seed and independent
// of the thread count; the model loader accepts the file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "gguf/gguf.h"
#include "model/model.h"
#include "model/tools/gen_model.h"
#include "tmpdir.h"

namespace tandem::model {
namespace {

using mtools_test::kModels;

std::unique_ptr<gguf::File> gen(const mtools_test::TempDir& dir, const std::string& name, GenModelOptions o) {
  o.preset = o.preset.empty() ? "tiny" : o.preset;
  o.vocab_path = kModels + "tiny-granitehybrid.gguf";
  auto st = gen_model(o, dir.file(name));
  EXPECT_TRUE(st.is_ok()) << st.status().to_string();
  if (!st.is_ok()) return nullptr;
  auto f = gguf::File::open(dir.file(name));
  EXPECT_TRUE(f.is_ok()) << f.status().to_string();
  return f.is_ok() ? std::move(f).value() : nullptr;
}

const float* f32(const gguf::File& f, const std::string& name, int64_t* n) {
  const gguf::TensorInfo* t = f.find_tensor(name);
  EXPECT_NE(t, nullptr) << name;
  if (t == nullptr) return nullptr;
  EXPECT_EQ(t->type, DType::F32) << name;
  *n = t->n_elements();
  return static_cast<const float*>(t->data);
}

TEST(GenModel, TinyMatchesReferenceLayout) {
  mtools_test::TempDir dir;
  auto got = gen(dir, "tiny.gguf", {});
  auto ref = gguf::File::open(kModels + "tiny-granitehybrid-256.gguf");
  ASSERT_TRUE(got && ref.is_ok());
  ASSERT_EQ(got->tensors().size(), (*ref)->tensors().size());
  for (size_t i = 0; i < got->tensors().size(); ++i) {
    const auto& g = got->tensors()[i];
    const auto& r = (*ref)->tensors()[i];
    EXPECT_EQ(g.name, r.name);
    EXPECT_EQ(g.shape, r.shape) << r.name;
    EXPECT_EQ(g.type, r.type) << r.name;
    EXPECT_EQ(g.offset, r.offset) << r.name;
  }
  // Every key of the reference file, with the same value type; hyper-parameters equal.
  for (const auto& [key, value] : (*ref)->metadata()) {
    const gguf::Value* v = got->find(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(v->type(), value.type()) << key;
    if (key.rfind("general.", 0) != 0) {
      EXPECT_TRUE(*v == value) << key << ": " << v->to_string();
    }
  }
}

TEST(GenModel, Q4KMChoosesTheReferenceMix) {
  mtools_test::TempDir dir;
  GenModelOptions o;
  o.type = "q4_k_m";
  auto got = gen(dir, "q.gguf", o);
  auto ref = gguf::File::open(kModels + "tiny-granitehybrid-256-q4_k_m.gguf");
  ASSERT_TRUE(got && ref.is_ok());
  EXPECT_EQ(got->get_int("general.file_type").value(), (*ref)->get_int("general.file_type").value());
  for (const auto& r : (*ref)->tensors()) {
    const gguf::TensorInfo* g = got->find_tensor(r.name);
    ASSERT_NE(g, nullptr) << r.name;
    EXPECT_EQ(dtype_name(g->type), dtype_name(r.type)) << r.name;
  }
}

TEST(GenModel, ValuesFollowTheStatedDistributions) {
  mtools_test::TempDir dir;
  auto f = gen(dir, "tiny.gguf", {});
  ASSERT_TRUE(f);
  int64_t n = 0;
  // Linear weights: mean 0, std 1/sqrt(fan_in) (fan_in = shape[0]).
  for (const char* name : {"token_embd.weight", "blk.0.ssm_in.weight", "blk.0.ssm_out.weight",
                           "blk.1.attn_q.weight", "blk.3.ffn_down.weight"}) {
    const float* x = f32(*f, name, &n);
    ASSERT_NE(x, nullptr);
    const double want = 1.0 / std::sqrt(static_cast<double>(f->find_tensor(name)->shape[0]));
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; ++i) {
      s += x[i];
      s2 += double(x[i]) * x[i];
    }
    const double mean = s / n, sd = std::sqrt(s2 / n - mean * mean);
    EXPECT_NEAR(sd / want, 1.0, 0.02) << name;
    EXPECT_LT(std::fabs(mean), 5 * want / std::sqrt(double(n))) << name;
  }
  for (int l : {0, 2}) {
    const std::string b = fmt::format("blk.{}.", l);
    const float* a = f32(*f, b + "ssm_a", &n);
    ASSERT_NE(a, nullptr);
    for (int64_t i = 0; i < n; ++i) EXPECT_TRUE(a[i] <= -1.0f && a[i] >= -16.0f) << a[i];
    const float* dt = f32(*f, b + "ssm_dt.bias", &n);
    ASSERT_NE(dt, nullptr);
    for (int64_t i = 0; i < n; ++i) {
      const double delta = std::log1p(std::exp(double(dt[i])));  // softplus
      EXPECT_TRUE(delta >= 0.999e-3 && delta <= 1.001e-1) << delta;
    }
    const float* d = f32(*f, b + "ssm_d", &n);
    ASSERT_NE(d, nullptr);
    for (int64_t i = 0; i < n; ++i) EXPECT_TRUE(d[i] >= 0.9f && d[i] <= 1.1f) << d[i];
    const float* norm = f32(*f, b + "ssm_norm.weight", &n);
    ASSERT_NE(norm, nullptr);
    for (int64_t i = 0; i < n; ++i) EXPECT_TRUE(norm[i] >= 0.9f && norm[i] <= 1.1f) << norm[i];
  }
}

TEST(GenModel, DeterministicPerSeedWhateverTheThreads) {
  mtools_test::TempDir dir;
  GenModelOptions a, b, c;
  a.n_threads = 1;
  b.n_threads = 3;
  c.seed = 2;
  auto fa = gen(dir, "a.gguf", a), fb = gen(dir, "b.gguf", b), fc = gen(dir, "c.gguf", c);
  ASSERT_TRUE(fa && fb && fc);
  const auto& ta = fa->find_tensor("blk.0.ssm_in.weight");
  const auto& tb = fb->find_tensor("blk.0.ssm_in.weight");
  const auto& tc = fc->find_tensor("blk.0.ssm_in.weight");
  EXPECT_EQ(std::memcmp(ta->data, tb->data, ta->bytes), 0);
  EXPECT_NE(std::memcmp(ta->data, tc->data, ta->bytes), 0);
  EXPECT_EQ(mtools_test::read_all(dir.file("a.gguf")).size(), mtools_test::read_all(dir.file("b.gguf")).size());
}

// Real presets: shapes from the published configurations, without generating.
TEST(GenModel, PresetShapes) {
  auto p = granitehybrid_preset("granite-4.0-h-350m");
  ASSERT_TRUE(p.is_ok());
  auto shapes = granitehybrid_tensor_shapes(*p, 100352);
  int64_t params = 0;
  int n_attn = 0, n_ssm = 0;
  for (const auto& t : shapes) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    params += n;
    if (t.name == "blk.0.ssm_in.weight") {
      EXPECT_EQ(t.shape, (std::vector<int64_t>{768, 2 * 1536 + 2 * 128 + 48}));
    }
    if (t.name == "blk.0.ssm_conv1d.weight") {
      EXPECT_EQ(t.shape, (std::vector<int64_t>{4, 1536 + 256}));
    }
    if (t.name == "blk.10.attn_k.weight") {
      EXPECT_EQ(t.shape, (std::vector<int64_t>{768, 256}));
    }
    n_attn += t.name.find("attn_q") != std::string::npos;
    n_ssm += t.name.find("ssm_in") != std::string::npos;
  }
  EXPECT_EQ(n_attn, 4);
  EXPECT_EQ(n_ssm, 28);
  EXPECT_NEAR(static_cast<double>(params) / 1e6, 340.0, 5.0);  // "350M" class, tied embeddings
  auto q = granitehybrid_preset("granite-4.0-h-1b");
  ASSERT_TRUE(q.is_ok());
  bool seen = false;
  for (const auto& t : granitehybrid_tensor_shapes(*q, 100352)) {
    if (t.name == "blk.5.attn_q.weight") {
      EXPECT_EQ(t.shape, (std::vector<int64_t>{1536, 12 * 128}));
      seen = true;
    }
    if (t.name == "blk.0.ssm_in.weight") {
      EXPECT_EQ(t.shape, (std::vector<int64_t>{1536, 2 * 3072 + 256 + 48}));
    }
  }
  EXPECT_TRUE(seen);
  EXPECT_FALSE(granitehybrid_preset("granite-9000").is_ok());
}

TEST(GenModel, MissingVocabFailsWithoutOutput) {
  mtools_test::TempDir dir;
  GenModelOptions o;
  o.preset = "tiny";
  o.vocab_path = dir.file("no-such-vocab.gguf");
  auto st = gen_model(o, dir.file("out.gguf"));
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.status().message().find("no-such-vocab.gguf"), std::string::npos) << st.status().message();
  EXPECT_TRUE(dir.entries().empty());
  auto nf = find_fixture("vocab/definitely-not-here.gguf");
  EXPECT_FALSE(nf.is_ok());
  // The default dbrx vocabulary is found from the fixtures folder.
  auto dbrx = find_fixture("vocab/ggml-vocab-dbrx.gguf");
  EXPECT_TRUE(dbrx.is_ok()) << dbrx.status().to_string();
}

TEST(GenModel, LoadsWithModelLoader) {
  mtools_test::TempDir dir;
  for (const char* type : {"f32", "q8_0", "q4_k_m"}) {
    GenModelOptions o;
    o.type = type;
    ASSERT_TRUE(gen(dir, std::string(type) + ".gguf", o));
    auto m = Model::load(dir.file(std::string(type) + ".gguf"));
    ASSERT_TRUE(m.is_ok()) << type << ": " << m.status().to_string();
    const ModelConfig& c = (*m)->config();
    EXPECT_EQ(c.arch, "granitehybrid");
    EXPECT_EQ(c.n_embd, 256);
    EXPECT_EQ(c.n_layer, 4);
    EXPECT_EQ(c.n_vocab, 512);
    EXPECT_EQ(c.ssm_dt_rank, 16);
    ASSERT_EQ(c.mixer.size(), 4u);
    EXPECT_EQ(c.mixer[0], MixerKind::kMamba2);
    EXPECT_EQ(c.mixer[1], MixerKind::kAttention);
    EXPECT_EQ(c.mixer[3], MixerKind::kAttention);
    EXPECT_FALSE(c.use_rope);
  }
}

}  // namespace
}  // namespace tandem::model
