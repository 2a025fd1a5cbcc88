// Recurrent store: slots, copy-on-write, zero start, suffix removal through
// snapshots, snapshot pool LRU, capabilities, refused operations.
#include <gtest/gtest.h>

#include "toy.h"

namespace tandem::memory {
namespace {

using toy::attn_layer;
using toy::rec_layer;

struct Fixture {
  std::vector<LayerSpec> specs;
  std::unique_ptr<HybridMemory> m;
  toy::ToyModel model;
  toy::Reference ref;
  Fixture(std::vector<LayerSpec> sp, int snapshots = 2, int n_seq = 3)
      : specs(sp), model(sp), ref(sp, n_seq) {
    MemoryOptions o;
    o.n_ctx = 32;
    o.n_seq_max = n_seq;
    o.n_ubatch = 4;
    o.kv_type = DType::F32;
    o.snapshot_slots = snapshots;
    auto r = HybridMemory::create(sp, o);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    m = std::move(*r);
  }
  // Decode tokens for one sequence set (continuing) in both memory and reference.
  void run(std::vector<int32_t> seqs, int n, int tok0 = 7) {
    const int32_t p0 = ref.next_pos(seqs[0]);
    Batch b;
    std::vector<float> want, got;
    for (int t = 0; t < n; ++t) {
      b.tokens.push_back(tok0 + t);
      b.pos.push_back(p0 + t);
      b.seq.push_back(seqs);
      b.output.push_back(1);
      want.push_back(ref.decode_row(seqs, tok0 + t, p0 + t));
    }
    Status st = toy::decode(*m, model, b, got);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    ASSERT_EQ(got, want);
    ASSERT_EQ(toy::compare(*m, ref), "");
  }
};

TEST(Recurrent, StateViewGivesOneZeroedSlotPerStream) {
  Fixture f({rec_layer(), attn_layer()});
  f.run({0}, 3);
  ASSERT_TRUE(f.m->seq_rm(0, -1, -1).is_ok());
  // Slot 0 now holds stale data; a new sequence must start from zeros.
  Batch b;
  b.tokens = {1, 2};
  b.pos = {0, 0};
  b.seq = {{1}, {2}};
  b.output = {1, 1};
  auto p = f.m->plan(b);
  ASSERT_TRUE(p.is_ok());
  auto a = f.m->apply(*p, 0);
  ASSERT_TRUE(a.is_ok());
  StateView sv = a->memory->state(0);
  ASSERT_EQ(sv.n_seqs, 2);
  EXPECT_NE(sv.conv[0], sv.conv[1]);
  EXPECT_NE(sv.ssm[0], sv.ssm[1]);
  for (int j = 0; j < 2; ++j)
    for (int k = 0; k < 2 * 2 * 3; ++k) EXPECT_EQ(sv.ssm[j][k], 0.0f);
  EXPECT_EQ(a->memory->state(1).n_seqs, 0);  // layer 1 has no recurrent state
  EXPECT_EQ(a->memory->kv(0).k, nullptr);    // layer 0 has no attention
  f.m->rollback(*p);
}

// Double buffering: a decode step on a sequence that has a state writes the
// new state into a spare slot and leaves the old slot untouched, so a rollback
// costs nothing and restores the old state bit for bit; the scan reads the
// old SSM state from the old slot and the small conv state is copied into the
// new slot when the forward pass asks for the layer.
TEST(Recurrent, DecodeWritesASpareSlotAndLeavesTheOldOneForRollback) {
  Fixture f({rec_layer()});
  f.run({0}, 3);
  RecurrentStore& rec = f.m->impl().rec;
  const int old_slot = rec.seq(0).slot;
  ASSERT_GE(old_slot, 0);
  std::vector<float> before(rec.slot_floats()), now(rec.slot_floats());
  rec.read_slot(old_slot, before.data());

  Batch b;
  b.tokens = {9};
  b.pos = {3};
  b.seq = {{0}};
  b.output = {1};
  auto p = f.m->plan(b);
  ASSERT_TRUE(p.is_ok());
  auto a = f.m->apply(*p, 0);
  ASSERT_TRUE(a.is_ok());
  StateView sv = a->memory->state(0);
  ASSERT_EQ(sv.n_seqs, 1);
  const int new_slot = rec.seq(0).slot;
  EXPECT_NE(new_slot, old_slot);
  EXPECT_EQ(sv.ssm[0], rec.ssm(0, new_slot));
  EXPECT_EQ(sv.conv[0], rec.conv(0, new_slot));
  // The scan reads the old state where it is (ssm_src); only the small conv
  // state was copied when the layer was asked for.
  const RecurrentStore::Layer& L = rec.layer(0);
  ASSERT_NE(sv.ssm_src, nullptr);
  EXPECT_EQ(sv.ssm_src[0], rec.ssm(0, old_slot));
  EXPECT_EQ(std::vector<float>(sv.conv[0], sv.conv[0] + L.conv_elems),
            std::vector<float>(rec.conv(0, old_slot), rec.conv(0, old_slot) + L.conv_elems));
  for (size_t k = 0; k < L.ssm_elems; ++k) sv.ssm[0][k] = -1.0f;  // the forward pass writes
  for (size_t k = 0; k < L.conv_elems; ++k) sv.conv[0][k] = -1.0f;
  EXPECT_EQ(rec.alloc_slot() == old_slot, false);  // held until the decode ends
  rec.read_slot(old_slot, now.data());
  EXPECT_EQ(now, before);
  f.m->rollback(*p);
  EXPECT_EQ(rec.seq(0).slot, old_slot);
  rec.read_slot(old_slot, now.data());
  EXPECT_EQ(now, before);
  EXPECT_EQ(f.m->n_slots_used(), 1);
  EXPECT_EQ(toy::compare(*f.m, f.ref), "");

  // Committed: the sequence lives in the other slot, the old one is free again.
  f.run({0}, 1);
  EXPECT_NE(rec.seq(0).slot, old_slot);
  EXPECT_EQ(rec.refcount(old_slot), 0);
  EXPECT_EQ(f.m->n_slots_used(), 1);
  f.run({0}, 2);  // and back and forth, always against the reference
}

TEST(Recurrent, SeqCpSharesThenCopiesOnFirstWrite) {
  Fixture f({rec_layer()});
  f.run({0}, 3);
  ASSERT_TRUE(f.m->seq_cp(0, 1).is_ok());
  f.ref.hist(1) = f.ref.hist(0);
  EXPECT_EQ(f.m->n_slots_used(), 1);  // shared by reference
  EXPECT_EQ(f.m->seq_pos_max_rec(1), 2);
  f.run({1}, 2, 100);                 // copy on write: 0 keeps its state
  EXPECT_EQ(f.m->n_slots_used(), 2);
  f.run({0}, 1, 50);
  // A shared stream for two sequences that share a slot is accepted.
  ASSERT_TRUE(f.m->seq_cp(0, 2).is_ok());
  f.ref.hist(2) = f.ref.hist(0);
  f.run({0, 2}, 2, 60);
  EXPECT_EQ(f.m->n_slots_used(), 2);  // 0 and 2 still share, wrote in place
}

TEST(Recurrent, SuffixRemovalRestoresNewestSnapshotAndReportsReplay) {
  Fixture f({rec_layer(), attn_layer()}, 3);
  f.run({0}, 4);  // pos 0..3
  auto s1 = f.m->snapshot(0);
  ASSERT_TRUE(s1.is_ok());
  EXPECT_EQ(f.m->snapshot_pos(*s1), 3);
  f.run({0}, 3);  // pos 4..6
  auto s2 = f.m->snapshot(0);
  ASSERT_TRUE(s2.is_ok());
  f.run({0}, 3);  // pos 7..9
  EXPECT_EQ(f.m->capabilities(0).restore_points, (std::vector<int32_t>{3, 6}));

  // Keep [0, 6): the newest snapshot at or before 5 is the one at 3.
  auto out = f.m->seq_rm(0, 6, -1);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(out->replay_from, 4);
  EXPECT_EQ(out->replay_end, 6);
  EXPECT_EQ(f.m->seq_pos_max_rec(0), 3);   // recurrent went back to the snapshot
  EXPECT_EQ(f.m->seq_pos_max_attn(0), 5);  // attention keeps its cells
  EXPECT_EQ(f.m->seq_next_pos(0), 4);
  EXPECT_EQ(f.m->capabilities(0).restore_points, (std::vector<int32_t>{3}));  // 6 is gone
  // Replay 4, 5 into the existing cells.
  auto& H = f.ref.hist(0);
  H.resize(6);
  Batch b;
  for (int p = 4; p < 6; ++p) {
    b.tokens.push_back(H[p].tok);
    b.pos.push_back(p);
    b.seq.push_back({0});
    b.output.push_back(1);
  }
  const int used = f.m->n_cells_used();
  std::vector<float> got;
  ASSERT_TRUE(toy::decode(*f.m, f.model, b, got).is_ok());
  EXPECT_EQ(got, (std::vector<float>{H[4].out, H[5].out}));
  EXPECT_EQ(f.m->n_cells_used(), used);  // rewritten in place, never duplicated
  EXPECT_EQ(toy::compare(*f.m, f.ref), "");

  // A snapshot exactly at p0 - 1 needs no replay.
  auto s3 = f.m->snapshot(0);
  ASSERT_TRUE(s3.is_ok());
  f.run({0}, 2);
  out = f.m->seq_rm(0, 6, -1);
  ASSERT_TRUE(out.is_ok());
  EXPECT_FALSE(out->needs_replay());
  f.ref.hist(0).resize(6);
  EXPECT_EQ(toy::compare(*f.m, f.ref), "");
}

TEST(Recurrent, SuffixWithoutSnapshotReplaysFromTheStart) {
  Fixture f({rec_layer()}, 0);
  f.run({0}, 5, 1);
  auto out = f.m->seq_rm(0, 2, -1);
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ(out->replay_from, 0);
  EXPECT_EQ(out->replay_end, 2);
  EXPECT_TRUE(f.m->seq_empty(0));
  f.ref.hist(0).clear();
  f.run({0}, 2, 1);  // same tokens again
  EXPECT_EQ(f.m->seq_pos_max_rec(0), 1);
}

TEST(Recurrent, PendingReplayIsReportedAgain) {
  // Hybrid: a second suffix removal before the replay still reports what the
  // caller has to replay to bring the recurrent state up to the attention cells.
  Fixture f({rec_layer(), attn_layer()}, 0);
  f.run({0}, 6);
  auto out = f.m->seq_rm(0, 4, -1);
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ(out->replay_from, 0);
  EXPECT_EQ(out->replay_end, 4);
  out = f.m->seq_rm(0, 2, -1);
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ(out->replay_from, 0);
  EXPECT_EQ(out->replay_end, 2);
  // Not replaying and continuing at pos 2 is refused: the state is empty.
  Batch b;
  b.tokens = {1};
  b.pos = {2};
  b.seq = {{0}};
  auto p = f.m->plan(b);
  EXPECT_FALSE(p.is_ok());
  EXPECT_NE(p.status().message().find("replayed from pos 0"), std::string::npos) << p.status().message();
}

TEST(Recurrent, MiddleRangesAndPartialCopiesAreRefused) {
  Fixture f({rec_layer(), attn_layer()});
  f.run({0}, 6);
  const auto before = *f.m->serialize("x");
  auto r = f.m->seq_rm(0, 1, 3);
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(r.status().message().find("middle"), std::string::npos) << r.status().message();
  r = f.m->seq_rm(0, 0, 3);  // a prefix is not a suffix either
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(f.m->seq_cp(0, 1, 0, 3).code(), StatusCode::kUnsupported);
  EXPECT_EQ(*f.m->serialize("x"), before);
  const SeqCapabilities c = f.m->capabilities(0);
  EXPECT_TRUE(c.has_recurrent);
  EXPECT_FALSE(c.truncate_any_range);
  EXPECT_TRUE(c.truncate_suffix);
  // Whole removal frees the slot and the cells.
  ASSERT_TRUE(f.m->seq_rm(0, -1, -1).is_ok());
  EXPECT_EQ(f.m->n_slots_used(), 0);
  EXPECT_EQ(f.m->n_cells_used(), 0);
}

TEST(Recurrent, SnapshotPoolEvictsLeastRecentlyUsed) {
  Fixture f({rec_layer(), attn_layer()}, 2);
  f.run({0}, 2);
  auto a = f.m->snapshot(0);
  f.run({0}, 1);
  auto b = f.m->snapshot(0);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  ASSERT_TRUE(f.m->restore(1, *a).is_ok());  // touches a: b is now least recent
  f.ref.hist(1) = f.ref.hist(0);
  f.ref.hist(1).resize(2);
  EXPECT_EQ(toy::compare(*f.m, f.ref), "");
  auto c = f.m->snapshot(0);
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(f.m->snapshot_pos(*b), -1);
  EXPECT_EQ(f.m->restore(2, *b).code(), StatusCode::kNotFound);
  EXPECT_GE(f.m->snapshot_pos(*a), 0);
  ASSERT_TRUE(f.m->release(*a).is_ok());
  EXPECT_EQ(f.m->release(*a).code(), StatusCode::kNotFound);
  // Pinned cells are released with the snapshot: removing seq 0 and 1 frees everything but c's cells.
  ASSERT_TRUE(f.m->seq_rm(0, -1, -1).is_ok());
  ASSERT_TRUE(f.m->seq_rm(1, -1, -1).is_ok());
  EXPECT_EQ(f.m->n_cells_used(), 3);  // c pins pos 0..2
  ASSERT_TRUE(f.m->release(*c).is_ok());
  EXPECT_EQ(f.m->n_cells_used(), 0);
}

TEST(Recurrent, RestoreIntoAnotherSequenceContinuesCorrectly) {
  Fixture f({rec_layer(), attn_layer(), rec_layer(2, 2, 1, 1, 2)}, 2);
  f.run({0}, 3);
  auto id = f.m->snapshot(0);
  ASSERT_TRUE(id.is_ok());
  f.run({0}, 4, 30);
  ASSERT_TRUE(f.m->restore(2, *id).is_ok());
  f.ref.hist(2) = f.ref.hist(0);
  f.ref.hist(2).resize(3);
  ASSERT_EQ(toy::compare(*f.m, f.ref), "");
  f.run({2}, 3, 90);
  f.run({0}, 1, 91);
  ASSERT_TRUE(f.m->seq_keep(2).is_ok());
  f.ref.hist(0).clear();
  EXPECT_EQ(toy::compare(*f.m, f.ref), "");
}

TEST(Recurrent, SnapshotsDisabledIsAClearError) {
  Fixture f({rec_layer()}, 0);
  f.run({0}, 1);
  auto id = f.m->snapshot(0);
  EXPECT_EQ(id.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(id.status().message().find("snapshot_slots"), std::string::npos);
}

TEST(Accounting, EstimateMatchesAllocation) {
  std::vector<LayerSpec> specs = {rec_layer(4, 4, 2, 3, 5), attn_layer(2, 8), LayerSpec{}, toy::both_layer()};
  MemoryOptions o;
  o.n_ctx = 100;
  o.n_seq_max = 3;
  o.kv_type = DType::F16;
  o.snapshot_slots = 2;
  auto est = HybridMemory::estimate(specs, o);
  ASSERT_TRUE(est.is_ok());
  // By hand: K+V per cell = 2 layers × 2 heads × (d_k + d_v) × 2 bytes.
  EXPECT_EQ(est->attention, size_t(100) * (2 * 8 * 2 + 2 * 4 * 2) * 2);
  // Slot floats: layer 0: 3×4 conv + 2·3·5 ssm; both layer: 3×3 conv + 2·2·3 ssm.
  const size_t slot = (3 * 4 + 30 + 3 * 3 + 12) * 4;
  // 3 sequences: a slot each plus a spare each (double buffering).
  EXPECT_EQ(est->recurrent, slot * 6);
  EXPECT_EQ(est->snapshots, slot * 2);
  auto m = HybridMemory::create(specs, o);
  ASSERT_TRUE(m.is_ok());
  EXPECT_EQ((*m)->bytes().total(), est->total());
  toy::ToyModel model(specs);
  Batch b;
  b.tokens = {1, 2};
  b.pos = {0, 1};
  b.seq = {{1}, {1}};
  std::vector<float> out;
  ASSERT_TRUE(toy::decode(**m, model, b, out).is_ok());
  EXPECT_EQ((*m)->seq_bytes(1).n_cells, 2);
  EXPECT_EQ((*m)->seq_bytes(1).attention, size_t(2) * (2 * 8 * 2 + 2 * 4 * 2) * 2);
  EXPECT_EQ((*m)->seq_bytes(1).recurrent, slot);
  EXPECT_EQ((*m)->seq_bytes(0).recurrent, 0u);
  o.n_seq_max = 0;
  EXPECT_FALSE(HybridMemory::estimate(specs, o).is_ok());
}

}  // namespace
}  // namespace tandem::memory
