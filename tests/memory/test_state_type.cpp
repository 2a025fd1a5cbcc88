// Recurrent state stored as bf16 (--state-type bf16): half the bytes, the
// forward pass sees f32 staging, end_ubatch() rounds to nearest even, rollback
// restores the bf16 bytes exactly, snapshots / suffix seq_rm / state files
// keep the bf16 bits, and a file of the other state type is refused.
#include <gtest/gtest.h>

#include <cmath>

#include "memory/hybrid_impl.h"
#include "toy.h"

namespace tandem::memory {
namespace {

using toy::attn_layer;
using toy::rec_layer;

std::unique_ptr<HybridMemory> make(const std::vector<LayerSpec>& sp, DType st, int snapshots = 2) {
  MemoryOptions o;
  o.n_ctx = 32;
  o.n_seq_max = 3;
  o.n_ubatch = 8;
  o.kv_type = DType::F32;
  o.state_type = st;
  o.snapshot_slots = snapshots;
  auto r = HybridMemory::create(sp, o);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? std::move(*r) : nullptr;
}

Batch tokens(int s, int32_t p0, std::vector<int32_t> t) {
  Batch b;
  for (size_t i = 0; i < t.size(); ++i) {
    b.tokens.push_back(t[i]);
    b.pos.push_back(p0 + int32_t(i));
    b.seq.push_back({s});
    b.output.push_back(1);
  }
  return b;
}

std::vector<float> slot_of(const HybridMemory& m, int s) {
  std::vector<float> v(m.impl().rec.slot_floats());
  m.impl().rec.read_slot(m.impl().rec.seq(s).slot, v.data());
  return v;
}

TEST(StateType, Bf16SlotsAndSnapshotsTakeHalfTheBytes) {
  const std::vector<LayerSpec> sp = {rec_layer(), attn_layer(), rec_layer(5, 4, 3, 2, 4)};
  auto f = make(sp, DType::F32, 3), b = make(sp, DType::BF16, 3);
  ASSERT_TRUE(f && b);
  // Hand count: conv (4-1)*3 + ssm 2*2*3 = 21 floats; (4-1)*5 + 3*2*4 = 39 floats.
  ASSERT_EQ(f->impl().rec.slot_floats(), 60u);
  // 3 sequences: 6 slots (one each plus a spare each for double buffering).
  ASSERT_EQ(f->impl().rec.n_slots(), 6);
  EXPECT_EQ(f->bytes().recurrent, 60u * 4 * 6);
  EXPECT_EQ(b->bytes().recurrent, 60u * 2 * 6);
  EXPECT_EQ(b->bytes().snapshots, 60u * 2 * 3);
  EXPECT_EQ(f->bytes().attention, b->bytes().attention);
  MemoryOptions o = b->options();
  auto est = HybridMemory::estimate(sp, o);
  ASSERT_TRUE(est.is_ok());
  EXPECT_EQ(est->total(), b->bytes().total());
  toy::ToyModel model(sp);
  std::vector<float> out;
  ASSERT_TRUE(toy::decode(*b, model, tokens(0, 0, {3, 4}), out).is_ok());
  EXPECT_EQ(b->seq_bytes(0).recurrent, 60u * 2);
  o.state_type = DType::F16;
  EXPECT_FALSE(HybridMemory::create(sp, o).is_ok());
}

// The forward pass writes f32 values into the StateView; end_ubatch() stores
// them rounded to nearest even (bf16 keeps 7 mantissa bits: spacing 2^-7 at 1).
TEST(StateType, EndUbatchRoundsToNearestEvenAndRollbackRestoresBits) {
  auto m = make({rec_layer()}, DType::BF16);
  ASSERT_TRUE(m);
  auto p = m->plan(tokens(0, 0, {1}));
  ASSERT_TRUE(p.is_ok());
  auto a = m->apply(*p, 0);
  ASSERT_TRUE(a.is_ok());
  StateView sv = a->memory->state(0);
  ASSERT_EQ(sv.n_seqs, 1);
  for (int k = 0; k < 9; ++k) EXPECT_EQ(sv.conv[0][k], 0.0f);  // fresh: zero
  const float in[6] = {1.0f + 0x1p-8f,                  // tie -> even (1)
                       1.0f + 0x1p-7f + 0x1p-8f,        // tie -> even (1 + 2^-6)
                       1.0f + 0x1p-8f + 0x1p-20f,       // above the tie -> 1 + 2^-7
                       -3.0f - 0x1p-7f,                 // tie (spacing 2^-6 in [2,4)) -> even (-3)
                       0x1p-130f,                       // subnormal f32, kept exactly (top 7 bits)
                       65504.0f};                       // 0x477fe000 -> 0x4780 = 65536
  const float want[6] = {1.0f, 1.0f + 0x1p-6f, 1.0f + 0x1p-7f, -3.0f, 0x1p-130f, 65536.0f};
  for (int k = 0; k < 6; ++k) sv.ssm[0][k] = in[k];
  m->end_ubatch();
  m->commit(*p);
  std::vector<float> s1 = slot_of(*m, 0);
  for (int k = 0; k < 6; ++k) EXPECT_EQ(s1[9 + k], want[k]) << k;

  // Next micro-batch: the view shows the stored values widened exactly; a
  // rollback after the forward pass wrote garbage restores the bf16 bits.
  auto p2 = m->plan(tokens(0, 1, {2}));
  ASSERT_TRUE(p2.is_ok());
  auto a2 = m->apply(*p2, 0);
  ASSERT_TRUE(a2.is_ok());
  StateView sv2 = a2->memory->state(0);
  for (int k = 0; k < 6; ++k) EXPECT_EQ(sv2.ssm[0][k], want[k]) << k;
  for (int k = 0; k < 6; ++k) sv2.ssm[0][k] = 123.0f;
  m->end_ubatch();
  m->rollback(*p2);
  EXPECT_EQ(slot_of(*m, 0), s1);
  EXPECT_EQ(m->seq_pos_max_rec(0), 0);
}

// Multi-micro-batch decode: apply(i+1) must see what micro-batch i stored, and
// a failure in the last micro-batch returns the bf16 slot byte-identical.
TEST(StateType, MicroBatchesChainAndInjectedFailureRestores) {
  const std::vector<LayerSpec> sp = {rec_layer(), attn_layer()};
  auto m = make(sp, DType::BF16);
  ASSERT_TRUE(m);
  toy::ToyModel model(sp);
  std::vector<float> out;
  ASSERT_TRUE(toy::decode(*m, model, tokens(0, 0, {5, 6, 7}), out).is_ok());
  // The toy SSM counter ssm[1] counts tokens (small integers: exact in bf16).
  EXPECT_EQ(slot_of(*m, 0)[9 + 1], 3.0f);
  auto before = m->serialize("fp");
  ASSERT_TRUE(before.is_ok());
  Batch b = tokens(0, 3, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});  // n_ubatch 8: two micro-batches
  int n_ub = 0;
  ASSERT_FALSE(toy::decode(*m, model, b, out, 1, &n_ub).is_ok());
  EXPECT_EQ(*m->serialize("fp"), *before);
  ASSERT_TRUE(toy::decode(*m, model, b, out, -1, &n_ub).is_ok());
  EXPECT_EQ(n_ub, 2);
  EXPECT_EQ(slot_of(*m, 0)[9 + 1], 15.0f);
}

// A snapshot holds the bf16 bits: a suffix seq_rm back to it and the same
// continuation give the same state and outputs, bit for bit.
TEST(StateType, SnapshotRestoreAndSuffixRemovalAreExact) {
  const std::vector<LayerSpec> sp = {rec_layer(), attn_layer(), rec_layer()};
  auto m = make(sp, DType::BF16, 2);
  ASSERT_TRUE(m);
  toy::ToyModel model(sp);
  std::vector<float> out1, out2, out3;
  ASSERT_TRUE(toy::decode(*m, model, tokens(0, 0, {11, 12, 13, 14, 15, 16}), out1).is_ok());
  const std::vector<float> at5 = slot_of(*m, 0);
  auto id = m->snapshot(0);
  ASSERT_TRUE(id.is_ok());
  const Batch tail = tokens(0, 6, {17, 18, 19, 20});
  ASSERT_TRUE(toy::decode(*m, model, tail, out1).is_ok());
  const std::vector<float> at9 = slot_of(*m, 0);
  ASSERT_NE(at9, at5);

  auto rm = m->seq_rm(0, 6, -1);
  ASSERT_TRUE(rm.is_ok());
  EXPECT_FALSE(rm->needs_replay());
  EXPECT_EQ(slot_of(*m, 0), at5);
  ASSERT_TRUE(toy::decode(*m, model, tail, out2).is_ok());
  EXPECT_EQ(out2, out1);
  EXPECT_EQ(slot_of(*m, 0), at9);

  ASSERT_TRUE(m->restore(1, *id).is_ok());  // into another sequence
  EXPECT_EQ(slot_of(*m, 1), at5);
  Batch tail1 = tail;
  for (auto& s : tail1.seq) s = {1};
  ASSERT_TRUE(toy::decode(*m, model, tail1, out3).is_ok());
  EXPECT_EQ(out3, out1);
  EXPECT_EQ(slot_of(*m, 1), at9);
}

TEST(StateType, StateFilesKeepBitsAndRefuseTheOtherType) {
  const std::vector<LayerSpec> sp = {rec_layer(), attn_layer()};
  toy::ToyModel model(sp);
  std::vector<float> out;
  auto b = make(sp, DType::BF16), f = make(sp, DType::F32);
  ASSERT_TRUE(b && f);
  for (HybridMemory* m : {b.get(), f.get()}) {
    ASSERT_TRUE(toy::decode(*m, model, tokens(0, 0, {21, 22, 23, 24, 25}), out).is_ok());
    ASSERT_TRUE(m->snapshot(0).is_ok());
    ASSERT_TRUE(toy::decode(*m, model, tokens(0, 5, {26, 27}), out).is_ok());
  }
  auto bf = b->serialize("fp"), ff = f->serialize("fp");
  ASSERT_TRUE(bf.is_ok() && ff.is_ok());
  // The recurrent payload (one slot + one snapshot) is half as large.
  const size_t slot_f32 = f->impl().rec.slot_floats() * 4;
  EXPECT_EQ(ff->size() - bf->size(), slot_f32);

  auto b2 = make(sp, DType::BF16);
  ASSERT_TRUE(b2->deserialize(*bf, "fp").is_ok());
  EXPECT_EQ(*b2->serialize("fp"), *bf);
  EXPECT_EQ(slot_of(*b2, 0), slot_of(*b, 0));

  // Other state type: clear error, memory unchanged.
  const auto before = *b2->serialize("fp");
  Status st = b2->deserialize(*ff, "fp");
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("f32"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("bf16"), std::string::npos) << st.message();
  EXPECT_EQ(*b2->serialize("fp"), before);
  auto f2 = make(sp, DType::F32);
  EXPECT_FALSE(f2->deserialize(*bf, "fp").is_ok());

  // One sequence: same rules.
  auto bs = b->serialize_seq(0, "fp"), fs = f->serialize_seq(0, "fp");
  ASSERT_TRUE(bs.is_ok() && fs.is_ok());
  ASSERT_TRUE(b2->deserialize_seq(*bs, 2, "fp").is_ok());
  EXPECT_EQ(slot_of(*b2, 2), slot_of(*b, 0));
  Status st2 = b2->deserialize_seq(*fs, 1, "fp");
  ASSERT_FALSE(st2.is_ok());
  EXPECT_NE(st2.message().find("state type"), std::string::npos) << st2.message();
  EXPECT_TRUE(b2->seq_empty(1));
}

}  // namespace
}  // namespace tandem::memory
