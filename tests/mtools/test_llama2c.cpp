// convert-llama2c against the reference engine's conversion of the same
// checkpoint (fixtures/models/stories260K.gguf): same tensors byte for byte,
// same vocabulary. Also the v1 ("ak42") layout, an unshared classifier, and
// refusal of bad checkpoints without leaving files behind.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "gguf/gguf.h"
#include "model/tools/llama2c.h"
#include "tmpdir.h"

namespace tandem::model {
namespace {

using mtools_test::read_all;
using mtools_test::TempDir;
using mtools_test::write_all;

const std::string kFix = TANDEM_FIXTURES;
const std::string kCkpt = kFix + "/llama2c/stories260K.bin";
const std::string kTok = kFix + "/llama2c/tok512.bin";
const std::string kRef = kFix + "/models/stories260K.gguf";

std::unique_ptr<gguf::File> open_or_die(const std::string& path) {
  auto f = gguf::File::open(path);
  EXPECT_TRUE(f.is_ok()) << f.status().to_string();
  return f.is_ok() ? std::move(f).value() : nullptr;
}

// Every tensor of `ref` exists in `got` in the same order with the same type, shape and bytes.
void expect_same_tensors(const gguf::File& got, const gguf::File& ref) {
  ASSERT_EQ(got.tensors().size(), ref.tensors().size());
  for (size_t i = 0; i < ref.tensors().size(); ++i) {
    const gguf::TensorInfo& r = ref.tensors()[i];
    const gguf::TensorInfo& g = got.tensors()[i];
    EXPECT_EQ(g.name, r.name);
    EXPECT_EQ(g.type, r.type) << r.name;
    EXPECT_EQ(g.shape, r.shape) << r.name;
    ASSERT_EQ(g.bytes, r.bytes) << r.name;
    EXPECT_EQ(std::memcmp(g.data, r.data, r.bytes), 0) << r.name << " differs";
  }
}

void expect_same_vocab(const gguf::File& got, const gguf::File& ref) {
  for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
                          "tokenizer.ggml.model", "tokenizer.ggml.bos_token_id",
                          "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"}) {
    const gguf::Value* g = got.find(key);
    const gguf::Value* r = ref.find(key);
    ASSERT_NE(r, nullptr) << key;
    ASSERT_NE(g, nullptr) << key;
    EXPECT_TRUE(*g == *r) << key << ": " << g->to_string() << " vs " << r->to_string();
  }
}

TEST(Llama2c, Stories260KMatchesReferenceConversion) {
  TempDir dir;
  const std::string out = dir.file("stories260K.gguf");
  Status st = convert_llama2c(kCkpt, kTok, out);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  auto got = open_or_die(out);
  auto ref = open_or_die(kRef);
  ASSERT_TRUE(got && ref);
  expect_same_tensors(*got, *ref);
  expect_same_vocab(*got, *ref);
  // Hyper-parameters the reference wrote (context length is ours: the checkpoint's seq_len).
  for (const char* key : {"general.architecture", "llama.embedding_length", "llama.feed_forward_length",
                          "llama.attention.head_count", "llama.attention.head_count_kv",
                          "llama.block_count", "llama.rope.dimension_count",
                          "llama.attention.layer_norm_rms_epsilon"}) {
    ASSERT_NE(got->find(key), nullptr) << key;
    EXPECT_TRUE(*got->find(key) == *ref->find(key)) << key;
  }
  EXPECT_EQ(got->get_int("llama.context_length").value(), 512);
  EXPECT_EQ(dir.entries().size(), 1u);  // no temp file left
}

// Rebuilds the legacy checkpoint in the v1 layout (header 256 bytes, norms
// first, no freq_cis) — the converted tensors must not change.
TEST(Llama2c, V1LayoutGivesTheSameTensors) {
  std::vector<uint8_t> legacy = read_all(kCkpt);
  ASSERT_EQ(legacy.size(), 1056540u);
  int32_t h[7];
  std::memcpy(h, legacy.data(), 28);
  const size_t D = h[0], H = h[1], L = h[2], NH = h[3], NKV = h[4], V = h[5], S = h[6];
  const size_t hs = D / NH, kv = hs * NKV;
  // Float offsets of the legacy groups.
  const float* f = reinterpret_cast<const float*>(legacy.data() + 28);
  size_t o = 0;
  auto grab = [&](size_t n) {
    std::vector<float> v(f + o, f + o + n);
    o += n;
    return v;
  };
  auto emb = grab(V * D), ra = grab(L * D), wq = grab(L * D * D), wk = grab(L * kv * D), wv = grab(L * kv * D),
       wo = grab(L * D * D), rf = grab(L * D), w1 = grab(L * H * D), w2 = grab(L * H * D), w3 = grab(L * H * D),
       fin = grab(D);
  o += S * hs;  // freq_cis real + imag
  ASSERT_EQ(28 + 4 * o, legacy.size());

  std::vector<uint8_t> v1(256, 0);
  const uint32_t magic = 0x616b3432;
  const int32_t version = 1;
  std::memcpy(v1.data(), &magic, 4);
  std::memcpy(v1.data() + 4, &version, 4);
  std::memcpy(v1.data() + 8, h, 28);
  v1[36] = 1;  // shared classifier
  for (const auto* g : {&ra, &rf, &fin, &emb, &wq, &wk, &wv, &wo, &w1, &w2, &w3}) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(g->data());
    v1.insert(v1.end(), p, p + 4 * g->size());
  }
  TempDir dir;
  write_all(dir.file("v1.bin"), v1);
  Status st = convert_llama2c(dir.file("v1.bin"), kTok, dir.file("v1.gguf"));
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  auto got = open_or_die(dir.file("v1.gguf"));
  auto ref = open_or_die(kRef);
  ASSERT_TRUE(got && ref);
  expect_same_tensors(*got, *ref);
}

// Legacy file with a negative vocab size carries its own classifier at the end.
TEST(Llama2c, UnsharedClassifierIsUsedForOutput) {
  std::vector<uint8_t> b = read_all(kCkpt);
  int32_t vocab;
  std::memcpy(&vocab, b.data() + 20, 4);
  const int32_t neg = -vocab;
  std::memcpy(b.data() + 20, &neg, 4);
  const size_t n = static_cast<size_t>(vocab) * 64;
  std::vector<float> wcls(n);
  for (size_t i = 0; i < n; ++i) wcls[i] = static_cast<float>(i % 97) * 0.01f - 0.5f;
  const uint8_t* p = reinterpret_cast<const uint8_t*>(wcls.data());
  b.insert(b.end(), p, p + 4 * n);
  TempDir dir;
  write_all(dir.file("u.bin"), b);
  Status st = convert_llama2c(dir.file("u.bin"), kTok, dir.file("u.gguf"));
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  auto got = open_or_die(dir.file("u.gguf"));
  auto ref = open_or_die(kRef);
  ASSERT_TRUE(got && ref);
  const gguf::TensorInfo* out = got->find_tensor("output.weight");
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(out->bytes, 4 * n);
  EXPECT_EQ(std::memcmp(out->data, wcls.data(), 4 * n), 0);
  const gguf::TensorInfo* emb = got->find_tensor("token_embd.weight");
  EXPECT_EQ(std::memcmp(emb->data, ref->find_tensor("token_embd.weight")->data, emb->bytes), 0);
}

void expect_refused(const std::vector<uint8_t>& ckpt, const std::string& what) {
  TempDir dir;
  write_all(dir.file("bad.bin"), ckpt);
  Status st = convert_llama2c(dir.file("bad.bin"), kTok, dir.file("out.gguf"));
  EXPECT_FALSE(st.is_ok()) << what;
  EXPECT_NE(st.message().find("bad.bin"), std::string::npos) << st.message();
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.gguf"))) << what;
  EXPECT_EQ(dir.entries().size(), 1u) << what << ": something was left behind";
}

TEST(Llama2c, BadCheckpointsAreRefusedWithoutOutput) {
  std::vector<uint8_t> good = read_all(kCkpt);
  ASSERT_FALSE(good.empty());
  expect_refused(std::vector<uint8_t>(good.begin(), good.end() - 4), "one float short");
  expect_refused(std::vector<uint8_t>(good.begin(), good.begin() + 1000), "truncated mid weights");
  expect_refused(std::vector<uint8_t>(good.begin(), good.begin() + 12), "truncated header");
  expect_refused({}, "empty");
  std::vector<uint8_t> extra = good;
  extra.push_back(0);
  expect_refused(extra, "trailing byte");
  std::vector<uint8_t> zero_heads = good;
  std::memset(zero_heads.data() + 12, 0, 4);
  expect_refused(zero_heads, "n_heads = 0");
  std::vector<uint8_t> odd = good;
  const int32_t seven = 7;
  std::memcpy(odd.data() + 12, &seven, 4);  // 64 % 7 != 0
  expect_refused(odd, "dim not divisible by heads");
  std::vector<uint8_t> v2(256, 0);
  const uint32_t magic = 0x616b3432;
  const int32_t version = 2;
  std::memcpy(v2.data(), &magic, 4);
  std::memcpy(v2.data() + 4, &version, 4);
  expect_refused(v2, "v2 (q8) checkpoint");
}

TEST(Llama2c, BadTokenizerIsRefused) {
  TempDir dir;
  std::vector<uint8_t> tok = read_all(kTok);
  write_all(dir.file("short.bin"), std::vector<uint8_t>(tok.begin(), tok.end() - 3));
  Status st = convert_llama2c(kCkpt, dir.file("short.bin"), dir.file("out.gguf"));
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("short.bin"), std::string::npos) << st.message();
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.gguf")));
  st = convert_llama2c(kCkpt, dir.file("missing.bin"), dir.file("out.gguf"));
  EXPECT_FALSE(st.is_ok());
}

}  // namespace
}  // namespace tandem::model
