// Model loading: config and per-layer specs of the fixture models (facts from
// fixtures/README.md), zero-copy weight binding, and clear errors for broken
// files built with the GGUF writer.
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gguf/writer.h"
#include "golden.h"
#include "kernels/thread_pool.h"
#include "model/model.h"
#include "model/weights.h"
#include "test_memory.h"

namespace tandem::testing {
namespace {

using memory::LayerKind;
using model::MixerKind;
using model::Model;

std::unique_ptr<Model> load(const std::string& name) {
  auto r = Model::load(fixtures() + "/models/" + name + ".gguf");
  EXPECT_TRUE(r.is_ok()) << name << ": " << r.status().to_string();
  return r.is_ok() ? std::move(r).value() : nullptr;
}

std::vector<LayerKind> kinds(const Model& m) {
  std::vector<LayerKind> k;
  for (const auto& s : m.layer_specs()) k.push_back(s.kind);
  return k;
}

constexpr LayerKind A = LayerKind::kAttention, R = LayerKind::kRecurrent, B = LayerKind::kBoth,
                    N = LayerKind::kNone;

TEST(ModelLoad, TinyLlama) {
  auto m = load("tiny-llama");
  ASSERT_TRUE(m);
  const auto& c = m->config();
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_layer, 4);
  EXPECT_EQ(c.n_ctx_train, 512);
  EXPECT_EQ(c.n_head, std::vector<int>(4, 4));
  EXPECT_EQ(c.n_head_kv, std::vector<int>(4, 2));  // GQA 4/2
  EXPECT_EQ(c.head_dim_k, 16);
  EXPECT_EQ(c.kind(), model::ModelKind::kAttentionOnly);
  EXPECT_EQ(kinds(*m), std::vector<LayerKind>(4, A));
  const auto& s = m->layer_specs()[0];
  EXPECT_EQ(s.attn.n_kv_heads, 2);
  ASSERT_TRUE(s.attn.rope.has_value());
  EXPECT_EQ(s.attn.rope->style, kernels::RopeStyle::kNormal);  // adjacent pairs
  EXPECT_EQ(s.attn.rope->n_rot, 16);
  EXPECT_FLOAT_EQ(s.attn.rope->freq_base, 10000.0f);
  EXPECT_FLOAT_EQ(c.attn_scale, 0.25f);  // 1/sqrt(16)
  EXPECT_FALSE(m->weights().output_tied);
}

TEST(ModelLoad, TinyMambaIsMamba1WithTiedOutput) {
  auto m = load("tiny-mamba");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->config().kind(), model::ModelKind::kRecurrent);
  EXPECT_EQ(kinds(*m), std::vector<LayerKind>(4, R));
  const auto& r = m->layer_specs()[0].rec;
  EXPECT_EQ(r.conv_channels, 128);  // d_inner
  EXPECT_EQ(r.conv_width, 4);
  EXPECT_EQ(r.n_head, 128);         // Mamba1: n_head = d_inner, head_dim = 1
  EXPECT_EQ(r.head_dim, 1);
  EXPECT_EQ(r.d_state, 16);
  EXPECT_TRUE(m->weights().output_tied);
  EXPECT_EQ(m->weights().output.data, m->weights().token_embd.data);
}

TEST(ModelLoad, TinyMamba2IgnoresHeadCount) {
  auto m = load("tiny-mamba2");
  ASSERT_TRUE(m);
  EXPECT_EQ(kinds(*m), std::vector<LayerKind>(4, R));  // head_count = 8 is the SSM head count
  const auto& r = m->layer_specs()[0].rec;
  EXPECT_EQ(r.conv_channels, 128 + 2 * 2 * 32);  // d_inner + 2·G·N
  EXPECT_EQ(r.n_head, 8);
  EXPECT_EQ(r.head_dim, 16);
  EXPECT_EQ(r.d_state, 32);
  EXPECT_EQ(m->config().ssm_n_group, 2);
}

TEST(ModelLoad, GraniteHybridNoPEAndScales) {
  auto m = load("tiny-granitehybrid");
  ASSERT_TRUE(m);
  const auto& c = m->config();
  EXPECT_EQ(c.kind(), model::ModelKind::kHybrid);
  EXPECT_EQ(kinds(*m), (std::vector<LayerKind>{R, R, A, R, R, A}));  // attention at layers 2 and 5
  EXPECT_FALSE(m->layer_specs()[2].attn.rope.has_value());             // NoPE
  EXPECT_FLOAT_EQ(c.embedding_scale, 1.5f);
  EXPECT_FLOAT_EQ(c.residual_scale, 0.5f);
  EXPECT_FLOAT_EQ(c.attn_scale, 0.0625f);
  EXPECT_FLOAT_EQ(c.logit_scale, 2.0f);
  EXPECT_TRUE(m->weights().output_tied);
  for (auto f : c.ffn) EXPECT_EQ(f, model::FfnKind::kSwiGLU);

  auto moe = load("tiny-granitehybrid-moe");
  ASSERT_TRUE(moe);
  EXPECT_EQ(moe->config().n_expert, 4);
  EXPECT_EQ(moe->config().n_expert_used, 2);
  EXPECT_EQ(moe->config().n_ff_shexp, 96);
  for (auto f : moe->config().ffn) EXPECT_EQ(f, model::FfnKind::kMoE);
  EXPECT_EQ(moe->weights().layers[0].up_exps.size(), 4u);
}

TEST(ModelLoad, JambaFalconNemotronLayouts) {
  auto j = load("tiny-jamba");
  ASSERT_TRUE(j);
  EXPECT_EQ(kinds(*j), (std::vector<LayerKind>{R, R, A, R}));
  EXPECT_EQ(j->config().ffn, (std::vector<model::FfnKind>{model::FfnKind::kSwiGLU, model::FfnKind::kMoE,
                                                           model::FfnKind::kSwiGLU, model::FfnKind::kMoE}));
  EXPECT_TRUE(j->weights().layers[0].ssm_dt_norm);
  EXPECT_FALSE(j->layer_specs()[2].attn.rope.has_value());

  auto f = load("tiny-falcon-h1");
  ASSERT_TRUE(f);
  EXPECT_EQ(kinds(*f), std::vector<LayerKind>(3, B));
  ASSERT_TRUE(f->layer_specs()[0].attn.rope.has_value());
  EXPECT_EQ(f->layer_specs()[0].attn.rope->style, kernels::RopeStyle::kNeox);
  EXPECT_TRUE(f->weights().layers[0].ffn_norm);  // bound from "blk.0.ffn_norm"

  auto n = load("tiny-nemotron-h");
  ASSERT_TRUE(n);
  EXPECT_EQ(kinds(*n), (std::vector<LayerKind>{R, A, R, N, R, N}));  // "MAM-M-"
  EXPECT_EQ(n->config().mixer[3], MixerKind::kNone);
  EXPECT_EQ(n->config().ffn[3], model::FfnKind::kReluSqr);
}

TEST(ModelLoad, WeightsAreViewsIntoTheMapping) {
  auto m = load("tiny-granitehybrid-256-q4_k_m");
  ASSERT_TRUE(m);
  const gguf::TensorInfo* t = m->file().find_tensor("blk.0.ffn_gate.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(m->weights().layers[0].ffn_gate.data, t->data);
  EXPECT_EQ(m->weights().layers[0].ffn_gate.type, t->type);
  const gguf::TensorInfo* n = m->file().find_tensor("blk.0.attn_norm.weight");
  EXPECT_EQ(static_cast<const void*>(m->weights().layers[0].attn_norm.data), n->data);
}

TEST(ModelLoad, FingerprintIdentifiesTheModel) {
  auto a = load("tiny-granitehybrid");
  auto a2 = load("tiny-granitehybrid");
  auto b = load("tiny-granitehybrid-moe");
  auto q = load("tiny-granitehybrid-256-q8_0");
  auto q2 = load("tiny-granitehybrid-256-q4_0");
  ASSERT_TRUE(a && a2 && b && q && q2);
  EXPECT_EQ(a->fingerprint(), a2->fingerprint());
  EXPECT_NE(a->fingerprint(), b->fingerprint());
  EXPECT_NE(q->fingerprint(), q2->fingerprint());  // same shapes, other tensor types
}

// ---------------------------------------------------------------- broken files

// A small valid llama file; `mutate` may edit the writer before it is serialised.
struct TinyLlama {
  static constexpr int E = 32, H = 2, KV = 1, F = 64, V = 64;
  std::vector<std::vector<float>> data;
  gguf::Writer w;

  TinyLlama(bool tied = true) {
    w.set_string("general.architecture", "llama");
    w.set_u32("llama.embedding_length", E);
    w.set_u32("llama.block_count", 1);
    w.set_u32("llama.feed_forward_length", F);
    w.set_u32("llama.attention.head_count", H);
    w.set_u32("llama.attention.head_count_kv", KV);
    w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    add("token_embd.weight", {E, V});
    add("output_norm.weight", {E});
    if (!tied) add("output.weight", {E, V});
    add("blk.0.attn_norm.weight", {E});
    add("blk.0.attn_q.weight", {E, E});
    add("blk.0.attn_k.weight", {E, E / H * KV});
    add("blk.0.attn_v.weight", {E, E / H * KV});
    add("blk.0.attn_output.weight", {E, E});
    add("blk.0.ffn_norm.weight", {E});
    add("blk.0.ffn_gate.weight", {E, F});
    add("blk.0.ffn_up.weight", {E, F});
    add("blk.0.ffn_down.weight", {F, E});
  }
  void add(const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::mt19937 rng(static_cast<unsigned>(data.size()));
    std::normal_distribution<float> nd(0.0f, 0.2f);
    auto& v = data.emplace_back(static_cast<size_t>(n));
    for (float& x : v) x = nd(rng);
    w.add_tensor(name, DType::F32, shape, v.data(), v.size() * sizeof(float));
  }
  Result<std::unique_ptr<Model>> build() {
    auto bytes = w.to_bytes();
    if (!bytes.is_ok()) return bytes.status();
    auto f = gguf::File::from_bytes(std::move(bytes).value(), "tiny-test.gguf");
    if (!f.is_ok()) return f.status();
    return Model::from_file(std::move(f).value());
  }
};

// A copy of the writer without one tensor (the Writer has no removal).
gguf::Writer without(const gguf::File& f, const std::string& drop) {
  gguf::Writer w;
  w.copy_metadata(f);
  for (const auto& t : f.tensors()) {
    if (t.name != drop) w.add_tensor(t.name, t.type, t.shape, t.data, t.bytes);
  }
  return w;
}

TEST(ModelLoadErrors, ValidTinyFileLoadsAndRuns) {
  TinyLlama t;
  auto m = t.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_TRUE((*m)->weights().output_tied);
  EXPECT_EQ((*m)->config().n_vocab, TinyLlama::V);
  // The runner rejects bad micro-batches with a status.
  kernels::ThreadPool pool(1);
  model::Runner r(**m, 4);
  TestMemory mem((*m)->layer_specs(), 8, 1, DType::F32);
  memory::UBatch ub;
  ub.n_tokens = ub.n_seq_tokens = 1;
  ub.tokens = {TinyLlama::V};  // out of range
  ub.pos = {0};
  ub.out_index = {0};
  ASSERT_TRUE(mem.prepare(ub, {0}));
  std::vector<float> logits(TinyLlama::V);
  Status st = r.forward(ub, mem, logits.data(), nullptr, pool);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("token id 64"), std::string::npos) << st.message();
  ub.n_tokens = ub.n_seq_tokens = 5;  // larger than the runner's max
  EXPECT_EQ(r.forward(ub, mem, logits.data(), nullptr, pool).code(), StatusCode::kInvalidArgument);
}

TEST(ModelLoadErrors, MissingTensorIsNamed) {
  TinyLlama t;
  auto bytes = t.w.to_bytes();
  ASSERT_TRUE(bytes.is_ok());
  auto f = gguf::File::from_bytes(std::move(bytes).value(), "x.gguf");
  ASSERT_TRUE(f.is_ok());
  gguf::Writer w = without(**f, "blk.0.attn_k.weight");
  auto f2 = gguf::File::from_bytes(std::move(w.to_bytes()).value(), "no-attn-k.gguf");
  ASSERT_TRUE(f2.is_ok());
  auto m = Model::from_file(std::move(f2).value());
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_NE(m.status().message().find("blk.0.attn_k.weight"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find("no-attn-k.gguf"), std::string::npos);
}

TEST(ModelLoadErrors, WrongShapeIsNamed) {
  TinyLlama u;
  auto b2 = u.w.to_bytes();
  ASSERT_TRUE(b2.is_ok());
  auto f = gguf::File::from_bytes(std::move(b2).value(), "x.gguf");
  ASSERT_TRUE(f.is_ok());
  gguf::Writer w = without(**f, "blk.0.ffn_down.weight");
  std::vector<float> wrong(size_t(TinyLlama::F) * (TinyLlama::E + 1), 0.1f);
  w.add_tensor("blk.0.ffn_down.weight", DType::F32, {TinyLlama::F, TinyLlama::E + 1}, wrong.data(),
               wrong.size() * sizeof(float));
  auto f2 = gguf::File::from_bytes(std::move(w.to_bytes()).value(), "bad-shape.gguf");
  ASSERT_TRUE(f2.is_ok()) << f2.status().to_string();
  auto m = Model::from_file(std::move(f2).value());
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(m.status().message().find("blk.0.ffn_down.weight"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find("[64, 33]"), std::string::npos) << m.status().message();
}

TEST(ModelLoadErrors, UnsupportedTensorTypeIsNamed) {
  TinyLlama u;
  auto b2 = u.w.to_bytes();
  auto f = gguf::File::from_bytes(std::move(b2).value(), "x.gguf");
  ASSERT_TRUE(f.is_ok());
  ASSERT_FALSE(kernels::can_dequantize(DType::I8));
  gguf::Writer w = without(**f, "blk.0.attn_q.weight");
  std::vector<int8_t> q(size_t(TinyLlama::E) * TinyLlama::E, 1);
  w.add_tensor("blk.0.attn_q.weight", DType::I8, {TinyLlama::E, TinyLlama::E}, q.data(), q.size());
  auto f2 = gguf::File::from_bytes(std::move(w.to_bytes()).value(), "i8.gguf");
  ASSERT_TRUE(f2.is_ok()) << f2.status().to_string();
  auto m = Model::from_file(std::move(f2).value());
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(m.status().message().find("blk.0.attn_q.weight"), std::string::npos) << m.status().message();
}

TEST(ModelLoadErrors, UnknownArchitectureIsNamed) {
  TinyLlama t;
  t.w.set_string("general.architecture", "gpt-j");
  auto m = t.build();
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(m.status().message().find("'gpt-j'"), std::string::npos) << m.status().message();
}

TEST(ModelLoadErrors, MissingOrMalformedKeysAreNamed) {
  {
    TinyLlama t;
    t.w.set_string("general.architecture", "mamba");  // the llama.* keys no longer apply
    auto m = t.build();
    ASSERT_FALSE(m.is_ok());
    EXPECT_NE(m.status().message().find("mamba.embedding_length"), std::string::npos) << m.status().message();
  }
  {
    TinyLlama t;
    t.w.set_u32_array("llama.attention.head_count_kv", {1, 1, 1});  // 3 entries, 1 layer
    auto m = t.build();
    ASSERT_FALSE(m.is_ok());
    EXPECT_NE(m.status().message().find("llama.attention.head_count_kv"), std::string::npos)
        << m.status().message();
  }
  {
    TinyLlama t;
    t.w.set_string("llama.attention.layer_norm_rms_epsilon", "small");  // wrong type
    auto m = t.build();
    ASSERT_FALSE(m.is_ok());
    EXPECT_NE(m.status().message().find("layer_norm_rms_epsilon"), std::string::npos) << m.status().message();
  }
}

}  // namespace
}  // namespace tandem::testing
