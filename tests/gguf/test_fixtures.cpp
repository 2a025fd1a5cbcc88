// The reader on every shared fixture, checked against facts that come from
// outside the reader: the fixtures README, the llama2.c originals the models were
// converted from (tok512.bin, stories260K.bin), the tokenizer test vectors, the
// Mamba2 shape relations of DESIGN.md, and the F32 twin of each converted model.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/fp16.h"
#include "fixture_cache.h"
#include "gguf/gguf.h"

namespace tandem::gguf {
namespace {

namespace fs = std::filesystem;
const std::string kFixtures = TANDEM_FIXTURES;

const File* open_or_die(const std::string& rel) { return testing::fixture(rel); }

using testing::slurp;

std::vector<fs::path> gguf_files(const std::string& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(kFixtures + "/" + dir))
    if (e.path().extension() == ".gguf") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(GgufFixtures, EveryModelAndVocabFileLoadsConsistently) {
  auto models = gguf_files("models");
  auto vocabs = gguf_files("vocab");
  ASSERT_GE(models.size(), 18u);  // the README lists 18 model files
  ASSERT_GE(vocabs.size(), 11u);  // and 11 vocabularies
  for (const auto& [dir, list] : {std::pair{"models/", models}, std::pair{"vocab/", vocabs}}) {
    for (const auto& p : list) {
      SCOPED_TRACE(p.string());
      const File* fp = open_or_die(dir + p.filename().string());
      ASSERT_NE(fp, nullptr);
      const File& f = *fp;
      EXPECT_EQ(f.file_size(), fs::file_size(p));
      EXPECT_TRUE(f.get_string("general.architecture").is_ok());
      auto tokens = f.get_string_array("tokenizer.ggml.tokens");
      ASSERT_TRUE(tokens.is_ok()) << tokens.status().message();
      if (const Value* types = f.find("tokenizer.ggml.token_type")) {
        EXPECT_EQ(types->size(), tokens->size());
      }
      if (const Value* scores = f.find("tokenizer.ggml.scores")) {
        EXPECT_EQ(scores->size(), tokens->size());
      }
      // Tensors: inside the file, aligned, and byte sizes implied by type and shape.
      const auto* base = static_cast<const uint8_t*>(f.tensors().empty() ? nullptr : f.tensors()[0].data) -
                         (f.tensors().empty() ? 0 : f.tensors()[0].offset);
      for (const auto& t : f.tensors()) {
        EXPECT_EQ(t.offset % f.alignment(), 0u) << t.name;
        EXPECT_EQ(t.bytes, row_bytes(t.type, t.shape[0]) * static_cast<size_t>(t.n_elements() / t.shape[0]));
        EXPECT_EQ(static_cast<const uint8_t*>(t.data), base + t.offset) << t.name;
        EXPECT_LE(f.data_offset() + t.offset + t.bytes, f.file_size()) << t.name;
        EXPECT_EQ(f.find_tensor(t.name), &t);
      }
    }
  }
}

TEST(GgufFixtures, GraniteHybridFacts) {
  auto f = open_or_die("models/tiny-granitehybrid.gguf");
  ASSERT_TRUE(f);
  EXPECT_EQ(*f->get_string("general.architecture"), "granitehybrid");
  EXPECT_EQ(*f->get_u32("granitehybrid.block_count"), 6u);
  // README: NoPE attention at layers 2 and 5 of 6, Mamba2 elsewhere.
  EXPECT_EQ(*f->get_int_array("granitehybrid.attention.head_count_kv"),
            (std::vector<int64_t>{0, 0, 2, 0, 0, 2}));
  EXPECT_FALSE(*f->get_bool("granitehybrid.rope.scaling.finetuned"));
  // Tied output: no output.weight (README), and layer kinds visible in the tensors.
  EXPECT_EQ(f->find_tensor("output.weight"), nullptr);
  for (int l = 0; l < 6; ++l) {
    bool attn = l == 2 || l == 5;
    EXPECT_EQ(f->find_tensor(fmt::format("blk.{}.attn_q.weight", l)) != nullptr, attn) << l;
    EXPECT_EQ(f->find_tensor(fmt::format("blk.{}.ssm_in.weight", l)) != nullptr, !attn) << l;
  }
  // DESIGN.md §3.1: ssm_in produces z [d_inner] | xBC [d_inner + 2GN] | dt [H].
  int64_t d_inner = *f->get_int("granitehybrid.ssm.inner_size");
  int64_t n = *f->get_int("granitehybrid.ssm.state_size");
  int64_t g = *f->get_int("granitehybrid.ssm.group_count");
  int64_t h = *f->get_int("granitehybrid.ssm.time_step_rank");
  int64_t embd = *f->get_int("granitehybrid.embedding_length");
  const TensorInfo* in = f->find_tensor("blk.0.ssm_in.weight");
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->shape, (std::vector<int64_t>{embd, 2 * d_inner + 2 * g * n + h}));
  const TensorInfo* conv = f->find_tensor("blk.0.ssm_conv1d.weight");
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->shape, (std::vector<int64_t>{*f->get_int("granitehybrid.ssm.conv_kernel"),
                                                d_inner + 2 * g * n}));
  EXPECT_EQ(f->get_string_array("tokenizer.ggml.tokens")->size(), 512u);  // tok512
}

TEST(GgufFixtures, OtherArchitectureFacts) {
  auto llama = open_or_die("models/tiny-llama.gguf");
  ASSERT_TRUE(llama);
  EXPECT_EQ(*llama->get_string("general.architecture"), "llama");
  EXPECT_EQ(*llama->get_u32("llama.attention.head_count"), 4u);     // GQA 4/2
  EXPECT_EQ(*llama->get_u32("llama.attention.head_count_kv"), 2u);

  auto mamba = open_or_die("models/tiny-mamba.gguf");
  ASSERT_TRUE(mamba);
  EXPECT_EQ(*mamba->get_string("general.architecture"), "mamba");
  EXPECT_EQ(mamba->find_tensor("output.weight"), nullptr);  // tied output

  auto mamba2 = open_or_die("models/tiny-mamba2.gguf");
  ASSERT_TRUE(mamba2);
  EXPECT_EQ(*mamba2->get_u32("mamba2.ssm.group_count"), 2u);  // README: 2 groups

  // Nemotron-H layer kinds "MAM-M-": Mamba2, attention, Mamba2, MLP, Mamba2, MLP.
  auto nem = open_or_die("models/tiny-nemotron-h.gguf");
  ASSERT_TRUE(nem);
  EXPECT_EQ(*nem->get_string("general.architecture"), "nemotron_h");
  const std::string kinds = "MAM-M-";
  ASSERT_EQ(*nem->get_u32("nemotron_h.block_count"), kinds.size());
  for (size_t l = 0; l < kinds.size(); ++l) {
    EXPECT_EQ(nem->find_tensor(fmt::format("blk.{}.ssm_in.weight", l)) != nullptr, kinds[l] == 'M') << l;
    EXPECT_EQ(nem->find_tensor(fmt::format("blk.{}.attn_q.weight", l)) != nullptr, kinds[l] == 'A') << l;
    EXPECT_EQ(nem->find_tensor(fmt::format("blk.{}.ffn_up.weight", l)) != nullptr, kinds[l] == '-') << l;
  }

  // Jamba: attention at layer 2, MoE router on layers 1 and 3.
  auto jamba = open_or_die("models/tiny-jamba.gguf");
  ASSERT_TRUE(jamba);
  EXPECT_EQ(*jamba->get_int_array("jamba.attention.head_count_kv"), (std::vector<int64_t>{0, 0, 2, 0}));
  for (int l = 0; l < 4; ++l)
    EXPECT_EQ(jamba->find_tensor(fmt::format("blk.{}.ffn_gate_inp.weight", l)) != nullptr, l == 1 || l == 3);

  // Falcon-H1: its FFN norm tensor has no ".weight" suffix.
  auto falcon = open_or_die("models/tiny-falcon-h1.gguf");
  ASSERT_TRUE(falcon);
  EXPECT_NE(falcon->find_tensor("blk.0.ffn_norm"), nullptr);
  EXPECT_NE(falcon->find_tensor("blk.0.attn_q.weight"), nullptr);
  EXPECT_NE(falcon->find_tensor("blk.0.ssm_in.weight"), nullptr);

  auto moe = open_or_die("models/tiny-granitehybrid-moe.gguf");
  ASSERT_TRUE(moe);
  EXPECT_EQ(*moe->get_u32("granitehybrid.expert_count"), 4u);       // 4 experts, top-2
  EXPECT_EQ(*moe->get_u32("granitehybrid.expert_used_count"), 2u);
}

// stories260K.gguf was converted from llama2.c's stories260K.bin and tok512.bin:
// its vocabulary and weights must be those files' bytes.
TEST(GgufFixtures, Stories260KMatchesLlama2cOriginals) {
  auto f = open_or_die("models/stories260K.gguf");
  ASSERT_TRUE(f);
  std::vector<uint8_t> ckpt = slurp(kFixtures + "/llama2c/stories260K.bin");
  ASSERT_GE(ckpt.size(), 28u);
  int32_t cfg[7];  // dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
  std::memcpy(cfg, ckpt.data(), sizeof cfg);
  EXPECT_EQ(*f->get_int("llama.embedding_length"), cfg[0]);
  EXPECT_EQ(*f->get_int("llama.feed_forward_length"), cfg[1]);
  EXPECT_EQ(*f->get_int("llama.block_count"), cfg[2]);
  EXPECT_EQ(*f->get_int("llama.attention.head_count"), cfg[3]);
  EXPECT_EQ(*f->get_int("llama.attention.head_count_kv"), cfg[4]);
  const int64_t dim = cfg[0], vocab = std::abs(cfg[5]);
  // Checkpoint layout: header, token embedding [vocab][dim], rms_att [n_layers][dim], ...
  const TensorInfo* emb = f->find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{dim, vocab}));
  ASSERT_EQ(emb->type, DType::F32);
  ASSERT_GE(ckpt.size(), 28 + emb->bytes + static_cast<size_t>(cfg[2] * dim * 4));
  EXPECT_EQ(std::memcmp(emb->data, ckpt.data() + 28, emb->bytes), 0);
  const size_t rms_att = 28 + static_cast<size_t>(vocab * dim * 4);
  for (int l = 0; l < cfg[2]; ++l) {
    const TensorInfo* n = f->find_tensor(fmt::format("blk.{}.attn_norm.weight", l));
    ASSERT_NE(n, nullptr);
    ASSERT_EQ(n->bytes, static_cast<size_t>(dim * 4));
    EXPECT_EQ(std::memcmp(n->data, ckpt.data() + rms_att + static_cast<size_t>(l * dim * 4), n->bytes), 0) << l;
  }

  // tok512.bin: i32 max_len, then per token f32 score, i32 length, bytes; the
  // converter writes "▁" for the space and plain <s>/</s> for the specials.
  std::vector<uint8_t> tok = slurp(kFixtures + "/llama2c/tok512.bin");
  auto tokens = f->get_string_array("tokenizer.ggml.tokens");
  auto scores = f->get_f32_array("tokenizer.ggml.scores");
  ASSERT_TRUE(tokens.is_ok() && scores.is_ok());
  ASSERT_EQ(tokens->size(), static_cast<size_t>(vocab));
  size_t p = 4;
  for (size_t i = 0; i < tokens->size(); ++i) {
    ASSERT_LE(p + 8, tok.size());
    float score;
    int32_t len;
    std::memcpy(&score, tok.data() + p, 4);
    std::memcpy(&len, tok.data() + p + 4, 4);
    p += 8;
    ASSERT_LE(p + static_cast<size_t>(len), tok.size());
    std::string text(reinterpret_cast<const char*>(tok.data() + p), static_cast<size_t>(len));
    p += static_cast<size_t>(len);
    EXPECT_EQ((*scores)[i], score) << i;
    if (i < 3) continue;  // <unk>, "\n<s>\n", "\n</s>\n" are renamed
    std::string expect;
    for (char c : text) expect += c == ' ' ? std::string("\xe2\x96\x81") : std::string(1, c);
    EXPECT_EQ((*tokens)[i], expect) << i;
  }
  EXPECT_EQ((*tokens)[0], "<unk>");
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ((*tokens)[2], "</s>");
}

TEST(GgufFixtures, DbrxVocabulary) {
  auto f = open_or_die("vocab/ggml-vocab-dbrx.gguf");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->find("tokenizer.ggml.tokens")->size(), 100352u);
  EXPECT_EQ(f->find("tokenizer.ggml.tokens")->elem_type(), ValueType::kString);
  EXPECT_EQ(*f->get_string("tokenizer.ggml.pre"), "dbrx");
  EXPECT_EQ(*f->get_string("tokenizer.ggml.model"), "gpt2");  // byte-level BPE
  EXPECT_TRUE(f->tensors().empty());
}

// Every token id in a vocabulary's expected tokenizer output exists in its token list.
TEST(GgufFixtures, VocabTestVectorsFitTheVocabularies) {
  int checked = 0;
  for (const auto& p : gguf_files("vocab")) {
    std::ifstream out(p.string() + ".out");
    if (!out) continue;
    const File* f = open_or_die("vocab/" + p.filename().string());
    ASSERT_NE(f, nullptr);
    size_t n = f->find("tokenizer.ggml.tokens")->size();
    std::string line;
    while (std::getline(out, line)) {
      std::istringstream ids(line);
      long long id;
      while (ids >> id) EXPECT_LT(static_cast<size_t>(id), n) << p;
    }
    ++checked;
  }
  EXPECT_GE(checked, 10);
}

TEST(GgufFixtures, DuplicateKeyFileIsRefusedNamingTheKey) {
  const std::string path = kFixtures + "/bad/ggml-vocab-dbrx-duplicate-key.gguf";
  ASSERT_TRUE(fs::exists(path));
  auto r = File::open(path);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(r.status().message().find("duplicate metadata key 'general.file_type'"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find(path), std::string::npos);
}

// The 256-wide granitehybrid in F16 / BF16 / Q8_0 holds the F32 file's weights,
// rounded as the format defines (round-to-nearest-even; Q8_0 = f16 scale d and
// 32 int8 q per block with q = round(x/d) computed from the unrounded d, so
// |d*q - x| <= d/2 + |q| * (f16 rounding of d, <= d * 2^-11) <= d * (0.5 + 127/2048)).
TEST(GgufFixtures, ConvertedVariantsHoldTheF32Weights) {
  auto ref = open_or_die("models/tiny-granitehybrid-256.gguf");
  ASSERT_TRUE(ref);
  EXPECT_EQ(*ref->get_u32("granitehybrid.embedding_length"), 256u);
  const std::vector<std::pair<std::string, DType>> variants = {
      {"f16", DType::F16}, {"bf16", DType::BF16}, {"q8_0", DType::Q8_0}, {"q4_0", DType::Q4_0},
      {"q4_k_m", DType::Q4_K}, {"q5_k_m", DType::Q5_K}, {"q6_k", DType::Q6_K}};
  for (const auto& [suffix, main_type] : variants) {
    SCOPED_TRACE(suffix);
    auto f = open_or_die("models/tiny-granitehybrid-256-" + suffix + ".gguf");
    ASSERT_TRUE(f);
    ASSERT_EQ(f->tensors().size(), ref->tensors().size());
    int of_main_type = 0;
    for (const auto& t : f->tensors()) {
      const TensorInfo* r = ref->find_tensor(t.name);
      ASSERT_NE(r, nullptr) << t.name;
      EXPECT_EQ(t.n_elements(), r->n_elements()) << t.name;
      EXPECT_EQ(t.shape[0], r->shape[0]) << t.name;  // trailing 1-dims may be dropped
      if (t.type == main_type) ++of_main_type;
      if (r->type != DType::F32) continue;
      const float* x = static_cast<const float*>(r->data);
      const int64_t n = r->n_elements();
      if (t.type == DType::F16 || t.type == DType::BF16) {
        const auto* h = static_cast<const uint16_t*>(t.data);
        for (int64_t i = 0; i < n; ++i) {
          uint16_t want = t.type == DType::F16 ? f32_to_fp16(x[i]) : f32_to_bf16(x[i]);
          ASSERT_EQ(h[i], want) << t.name << " [" << i << "]";
        }
      } else if (t.type == DType::Q8_0) {
        const auto* b = static_cast<const uint8_t*>(t.data);
        for (int64_t blk = 0; blk < n / 32; ++blk, b += 34) {
          uint16_t dh;
          std::memcpy(&dh, b, 2);
          float d = fp16_to_f32(dh);
          for (int j = 0; j < 32; ++j) {
            float v = d * static_cast<float>(static_cast<int8_t>(b[2 + j]));
            ASSERT_LE(std::fabs(v - x[blk * 32 + j]), d * (0.5f + 127.0f / 2048.0f) + 1e-7f) << t.name << " [" << blk * 32 + j << "]";
          }
        }
      }
    }
    EXPECT_GT(of_main_type, 0) << "no tensor of the file's main type";
  }
}

}  // namespace
}  // namespace tandem::gguf
