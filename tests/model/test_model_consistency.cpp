// Self-consistency of the forward pass: two sequences in one micro-batch
// (equal split: n_seqs = 2 streams with their own recurrent states; for
// attention-only models rows interleaved with masks separating them) give the
// same logits as each sequence run alone; outputs land at their out_index.
#include <gtest/gtest.h>

#include "golden.h"
#include "model_runner_util.h"
#include "model/weights.h"

namespace tandem::testing {
namespace {

class TwoSequences : public ::testing::TestWithParam<const char*> {};

TEST_P(TwoSequences, OneBatchEqualsEachAlone) {
  const std::string name = GetParam();
  Golden g;
  ASSERT_TRUE(g.load(name));
  auto m = load_fixture_model(name);
  ASSERT_TRUE(m);
  const int V = m->config().n_vocab;
  const bool attn_only = m->config().kind() == model::ModelKind::kAttentionOnly;
  kernels::ThreadPool pool(2);

  const auto& prompts = g.manifest.at("prompts");
  const int L = 12;
  std::vector<int32_t> a = prompts.at(0).at("tokens").get<std::vector<int32_t>>();
  std::vector<int32_t> b = prompts.at(1).at("tokens").get<std::vector<int32_t>>();
  ASSERT_GE(a.size(), size_t(L + 1));
  ASSERT_GE(b.size(), size_t(L + 1));
  a.resize(L + 1);
  b.resize(L + 1);
  // Alone: prompt of L tokens, then one more token.
  const std::vector<float> la = run_sequence(*m, a, 512, pool);
  const std::vector<float> lb = run_sequence(*m, b, 512, pool);

  // Together: step 1 = both prompts (2 x L rows), step 2 = one token each.
  model::Runner runner(*m, 2 * L);
  TestMemory mem(m->layer_specs(), 2 * (L + 1), 2, DType::F16);
  std::vector<float> out(size_t(2 * L) * V, -1.0f);
  for (int step = 0; step < 2; ++step) {
    const int T = step == 0 ? L : 1;  // tokens per sequence
    const int p0 = step == 0 ? 0 : L;
    memory::UBatch ub;
    ub.n_tokens = 2 * T;
    std::vector<int> row_seq;
    if (attn_only) {  // one stream, rows interleaved a0 b0 a1 b1 ...
      ub.n_seqs = 1;
      ub.n_seq_tokens = 2 * T;
      for (int i = 0; i < T; ++i)
        for (int s = 0; s < 2; ++s) {
          ub.tokens.push_back((s == 0 ? a : b)[p0 + i]);
          ub.pos.push_back(float(p0 + i));
          row_seq.push_back(s);
        }
    } else {  // equal split: stream 0 = a, stream 1 = b, sequence-major
      ub.n_seqs = 2;
      ub.n_seq_tokens = T;
      for (int s = 0; s < 2; ++s)
        for (int i = 0; i < T; ++i) {
          ub.tokens.push_back((s == 0 ? a : b)[p0 + i]);
          ub.pos.push_back(float(p0 + i));
          row_seq.push_back(s);
        }
    }
    // Outputs in reverse row order: out_index is the caller's order, not the row order.
    for (int r = 0; r < ub.n_tokens; ++r) ub.out_index.push_back(ub.n_tokens - 1 - r);
    ASSERT_TRUE(mem.prepare(ub, row_seq));
    std::fill(out.begin(), out.end(), -1.0f);
    Status st = runner.forward(ub, mem, out.data(), nullptr, pool);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    double worst = 0;
    for (int r = 0; r < ub.n_tokens; ++r) {
      const int pos = int(ub.pos[r]);
      const std::vector<float>& alone = row_seq[r] == 0 ? la : lb;
      worst = std::max(worst, nmse(out.data() + size_t(ub.out_index[r]) * V, alone.data() + size_t(pos) * V, V));
    }
    EXPECT_LE(worst, 1e-8) << name << " step " << step;
    std::printf("[consistency] %-24s step %d: max NMSE together vs alone %.3g\n", name.c_str(), step, worst);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, TwoSequences,
                         ::testing::Values("tiny-llama", "tiny-mamba", "tiny-mamba2", "tiny-granitehybrid",
                                           "tiny-granitehybrid-moe", "tiny-jamba", "tiny-falcon-h1",
                                           "tiny-nemotron-h"),
                         [](const ::testing::TestParamInfo<const char*>& i) {
                           std::string n = i.param;
                           for (char& ch : n) {
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return n;
                         });

TEST(RunnerOutputs, OnlyRequestedRowsAndEmbeddings) {
  auto m = load_fixture_model("tiny-granitehybrid");
  ASSERT_TRUE(m);
  const int V = m->config().n_vocab, E = m->config().n_embd;
  kernels::ThreadPool pool(1);
  const std::vector<int32_t> toks = {1, 403, 407, 261, 378};
  const std::vector<float> all = run_sequence(*m, toks, 8, pool);
  model::Runner runner(*m, 8);
  TestMemory mem(m->layer_specs(), 8, 1, DType::F16);
  memory::UBatch ub;
  ub.n_tokens = ub.n_seq_tokens = 5;
  for (int i = 0; i < 5; ++i) {
    ub.tokens.push_back(toks[i]);
    ub.pos.push_back(float(i));
    ub.out_index.push_back(-1);
  }
  ub.out_index[4] = 0;  // only the last row
  ub.out_index[1] = 1;  // and row 1, placed second
  ASSERT_TRUE(mem.prepare(ub, std::vector<int>(5, 0)));
  std::vector<float> logits(size_t(3) * V, 7.0f), emb(size_t(3) * E, 7.0f);
  ASSERT_TRUE(runner.forward(ub, mem, logits.data(), emb.data(), pool).is_ok());
  EXPECT_LE(nmse(logits.data(), all.data() + size_t(4) * V, V), 1e-10);
  EXPECT_LE(nmse(logits.data() + V, all.data() + size_t(1) * V, V), 1e-10);
  for (int i = 0; i < V; ++i) ASSERT_EQ(logits[size_t(2) * V + i], 7.0f);  // no third output row
  for (int i = 0; i < E; ++i) ASSERT_EQ(emb[size_t(2) * E + i], 7.0f);
  // The embeddings are the final normed hidden states: logits = output·emb / logit_scale.
  std::vector<float> re(size_t(2) * V);
  kernels::matmul(m->weights().output, emb.data(), 2, re.data(), pool);
  for (float& x : re) x /= m->config().logit_scale;
  EXPECT_LE(nmse(re.data(), logits.data(), 2 * V), 1e-12);
}

}  // namespace
}  // namespace tandem::testing
