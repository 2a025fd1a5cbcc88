// Batch planning: simple split, equal split, shared rows, output order, errors.
#include <gtest/gtest.h>

#include "toy.h"

namespace tandem::memory {
namespace {

using toy::attn_layer;
using toy::rec_layer;

std::unique_ptr<HybridMemory> make(std::vector<LayerSpec> specs, int n_ctx, int n_seq, int n_ubatch) {
  MemoryOptions o;
  o.n_ctx = n_ctx;
  o.n_seq_max = n_seq;
  o.n_ubatch = n_ubatch;
  o.kv_type = DType::F32;
  auto m = HybridMemory::create(std::move(specs), o);
  EXPECT_TRUE(m.is_ok()) << m.status().to_string();
  return std::move(*m);
}

struct B {
  Batch b;
  B& add(int tok, int pos, std::vector<int32_t> seq, bool out = true) {
    b.tokens.push_back(tok);
    b.pos.push_back(pos);
    b.seq.push_back(std::move(seq));
    b.output.push_back(out);
    return *this;
  }
};

std::vector<int> rows_of(const PlannedUBatch& u) { return {u.src_row.begin(), u.src_row.end()}; }

TEST(Planner, SimpleSplitForAttentionOnly) {
  auto m = make({attn_layer()}, 32, 2, 4);
  B b;
  for (int i = 0; i < 10; ++i) b.add(i, i, {0}, i % 3 == 0);
  auto p = m->plan(b.b);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  ASSERT_EQ(p->n_ubatch(), 3);
  EXPECT_EQ(rows_of(p->ubatches[0]), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(rows_of(p->ubatches[2]), (std::vector<int>{8, 9}));
  EXPECT_EQ(p->ubatch(2).n_seqs, 1);
  EXPECT_EQ(p->ubatch(2).n_seq_tokens, 2);
  EXPECT_EQ(p->n_outputs, 4);  // rows 0, 3, 6, 9
  EXPECT_EQ(p->ubatch(0).out_index, (std::vector<int32_t>{0, -1, -1, 1}));
  EXPECT_EQ(p->ubatch(2).out_index, (std::vector<int32_t>{-1, 3}));
}

TEST(Planner, EqualSplitRunsSequencesInLockstep) {
  auto m = make({rec_layer()}, 0, 3, 8);
  // Interleaved: seq 0 has 5 tokens, seq 1 has 2.
  B b;
  b.add(10, 0, {0}).add(20, 0, {1}).add(11, 1, {0}).add(21, 1, {1}).add(12, 2, {0}).add(13, 3, {0}).add(14, 4, {0});
  auto p = m->plan(b.b);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  ASSERT_EQ(p->n_ubatch(), 2);
  const UBatch& u0 = p->ubatch(0);
  EXPECT_EQ(u0.n_seqs, 2);
  EXPECT_EQ(u0.n_seq_tokens, 2);
  EXPECT_EQ(u0.tokens, (std::vector<int32_t>{10, 11, 20, 21}));  // sequence-major
  EXPECT_EQ(u0.out_index, (std::vector<int32_t>{0, 2, 1, 3}));   // caller order
  const UBatch& u1 = p->ubatch(1);
  EXPECT_EQ(u1.n_seqs, 1);
  EXPECT_EQ(u1.n_seq_tokens, 3);
  EXPECT_EQ(u1.tokens, (std::vector<int32_t>{12, 13, 14}));
  EXPECT_EQ(u1.pos, (std::vector<float>{2, 3, 4}));
}

TEST(Planner, EqualSplitRespectsUbatchSize) {
  auto m = make({rec_layer()}, 0, 4, 4);
  B b;
  for (int s = 0; s < 3; ++s)
    for (int t = 0; t < 3; ++t) b.add(t, t, {s});
  auto p = m->plan(b.b);
  ASSERT_TRUE(p.is_ok());
  int total = 0;
  for (const auto& u : p->ubatches) {
    EXPECT_LE(u.ub.n_tokens, 4);
    EXPECT_EQ(u.ub.n_tokens, u.ub.n_seqs * u.ub.n_seq_tokens);
    total += u.ub.n_tokens;
  }
  EXPECT_EQ(total, 9);
}

TEST(Planner, SharedRowsFormOneStreamThenFork) {
  auto m = make({rec_layer(), attn_layer()}, 32, 3, 16);
  B b;  // common prompt for {0,1}, then each continues alone
  b.add(1, 0, {0, 1}).add(2, 1, {1, 0}).add(3, 2, {0}).add(4, 2, {1}).add(5, 3, {1});
  auto p = m->plan(b.b);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  ASSERT_EQ(p->n_ubatch(), 3);
  EXPECT_EQ(p->ubatches[0].stream_seqs, (std::vector<std::vector<int32_t>>{{0, 1}}));
  EXPECT_EQ(p->ubatch(0).n_seq_tokens, 2);
  EXPECT_EQ(p->ubatches[1].stream_seqs, (std::vector<std::vector<int32_t>>{{0}, {1}}));
  EXPECT_EQ(p->ubatches[2].stream_seqs, (std::vector<std::vector<int32_t>>{{1}}));
  // Decoding it gives what the reference computes token by token.
  toy::ToyModel model({rec_layer(), attn_layer()});
  toy::Reference ref({rec_layer(), attn_layer()}, 3);
  std::vector<float> want, got;
  for (int r = 0; r < b.b.size(); ++r) want.push_back(ref.decode_row(b.b.seq[r], b.b.tokens[r], b.b.pos[r]));
  ASSERT_TRUE(toy::decode(*m, model, b.b, got).is_ok());
  EXPECT_EQ(got, want);
  EXPECT_EQ(toy::compare(*m, ref), "");
  EXPECT_EQ(m->n_slots_used(), 2);
  EXPECT_EQ(m->n_cells_used(), 5);  // the shared rows are stored once
}

Status plan_error(HybridMemory& m, const Batch& b) {
  auto before = m.serialize("x");
  auto p = m.plan(b);
  auto after = m.serialize("x");
  EXPECT_EQ(*before, *after) << "plan() changed memory";
  return p.status();
}

TEST(Planner, ErrorsNameTheCause) {
  auto m = make({rec_layer(), attn_layer()}, 4, 2, 8);
  toy::ToyModel model({rec_layer(), attn_layer()});
  std::vector<float> out;
  B first;
  first.add(1, 0, {0}).add(2, 1, {0});
  ASSERT_TRUE(toy::decode(*m, model, first.b, out).is_ok());

  Status st = plan_error(*m, B().add(1, 0, {2}).b);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("out of range"), std::string::npos) << st.message();

  st = plan_error(*m, B().add(1, 3, {0}).b);  // must continue at 2
  EXPECT_NE(st.message().find("position gap"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("sequence 0"), std::string::npos) << st.message();

  st = plan_error(*m, B().add(1, 2, {0}).add(2, 4, {0}).b);  // hole inside the batch
  EXPECT_NE(st.message().find("position gap"), std::string::npos) << st.message();

  st = plan_error(*m, B().add(1, 2, {0, 1}).b);  // 0 has a state, 1 is fresh
  EXPECT_NE(st.message().find("incompatible"), std::string::npos) << st.message();

  st = plan_error(*m, B().add(1, 2, {0}).add(2, 3, {0}).add(3, 0, {1}).b);  // 3 new cells, 2 free
  EXPECT_EQ(st.code(), StatusCode::kOutOfMemory);
  EXPECT_NE(st.message().find("no room"), std::string::npos) << st.message();

  Batch bad;
  bad.tokens = {1};
  bad.pos = {0};
  bad.seq = {{}};
  EXPECT_EQ(plan_error(*m, bad).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(plan_error(*m, Batch{}).code(), StatusCode::kInvalidArgument);
}

TEST(Planner, StalePlanIsRefused) {
  auto m = make({attn_layer()}, 8, 2, 8);
  B b;
  b.add(1, 0, {0});
  auto p = m->plan(b.b);
  ASSERT_TRUE(p.is_ok());
  ASSERT_TRUE(m->seq_rm(1, -1, -1).is_ok());  // any mutation
  auto a = m->apply(*p, 0);
  EXPECT_FALSE(a.is_ok());
  EXPECT_NE(a.status().message().find("stale"), std::string::npos);
}

TEST(Planner, OpsRefusedDuringDecode) {
  auto m = make({attn_layer()}, 8, 2, 1);
  B b;
  b.add(1, 0, {0}).add(2, 1, {0});
  auto p = m->plan(b.b);
  ASSERT_TRUE(p.is_ok());
  ASSERT_TRUE(m->apply(*p, 0).is_ok());
  EXPECT_FALSE(m->seq_rm(0, -1, -1).is_ok());
  EXPECT_FALSE(m->serialize("x").is_ok());
  EXPECT_FALSE(m->apply(*p, 0).is_ok());  // out of order
  ASSERT_TRUE(m->apply(*p, 1).is_ok());
  m->commit(*p);
  EXPECT_EQ(m->seq_pos_max_attn(0), 1);
}

}  // namespace
}  // namespace tandem::memory
