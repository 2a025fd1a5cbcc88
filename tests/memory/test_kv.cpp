// Attention store: masks from metadata, cell reuse, n_kv tracking usage,
// no silent overwrite when full, K re-rotation on seq_add / seq_div.
#include <gtest/gtest.h>

#include <cmath>

#include "core/fp16.h"
#include "toy.h"

namespace tandem::memory {
namespace {

using toy::attn_layer;

std::unique_ptr<HybridMemory> make(std::vector<LayerSpec> specs, int n_ctx, int n_seq, DType t = DType::F32) {
  MemoryOptions o;
  o.n_ctx = n_ctx;
  o.n_seq_max = n_seq;
  o.n_ubatch = 64;
  o.kv_type = t;
  o.snapshot_slots = 2;
  auto m = HybridMemory::create(std::move(specs), o);
  EXPECT_TRUE(m.is_ok()) << m.status().to_string();
  return std::move(*m);
}

Batch batch(std::vector<std::pair<int, std::vector<int32_t>>> rows) {  // (pos, seqs)
  Batch b;
  for (auto& [p, s] : rows) {
    b.tokens.push_back(p + 1);
    b.pos.push_back(p);
    b.seq.push_back(s);
    b.output.push_back(1);
  }
  return b;
}

// Applies a batch and returns the mask of its (single) micro-batch.
std::vector<float> mask_of(HybridMemory& m, const Batch& b, int* n_kv, std::vector<int32_t>* dst) {
  auto p = m.plan(b);
  EXPECT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p->n_ubatch(), 1);
  auto a = m.apply(*p, 0);
  EXPECT_TRUE(a.is_ok());
  KvView kv = a->memory->kv(0);
  *n_kv = kv.n_kv;
  dst->assign(kv.dst_cells, kv.dst_cells + b.size());
  std::vector<float> mask(kv.mask, kv.mask + size_t(b.size()) * kv.n_kv);
  m.commit(*p);
  return mask;
}

TEST(KvStore, MaskFollowsSequencesAndCausality) {
  auto m = make({attn_layer()}, 16, 3);
  int n_kv = 0;
  std::vector<int32_t> dst;
  // seq 0: pos 0,1 ; seq 1: pos 0 ; shared {0,2}? no: seq 2 gets its own pos 0.
  auto mask = mask_of(*m, batch({{0, {0}}, {0, {1}}, {1, {0}}, {0, {2}}}), &n_kv, &dst);
  ASSERT_EQ(n_kv, 4);
  EXPECT_EQ(dst, (std::vector<int32_t>{0, 1, 2, 3}));
  const float H = -INFINITY;
  const std::vector<float> want = {
      0, H, H, H,  // seq 0 pos 0: itself
      H, 0, H, H,  // seq 1 pos 0
      0, H, 0, H,  // seq 0 pos 1: pos 0 and itself
      H, H, H, 0,  // seq 2 pos 0
  };
  EXPECT_EQ(mask, want);
}

TEST(KvStore, SharedCellsAndIntersectionForMultiSequenceRows) {
  auto m = make({attn_layer()}, 16, 3);
  int n_kv = 0;
  std::vector<int32_t> dst;
  mask_of(*m, batch({{0, {0, 1}}, {1, {0}}, {1, {1}}}), &n_kv, &dst);
  // A row of {0,1} sees only the cells both sequences hold (their common history).
  auto mask = mask_of(*m, batch({{2, {0}}, {2, {1}}}), &n_kv, &dst);
  ASSERT_EQ(n_kv, 5);
  const float H = -INFINITY;
  EXPECT_EQ(mask, (std::vector<float>{0, 0, H, 0, H,  /* seq 0: cells 0,1 + new 3 */
                                      0, H, 0, H, 0}));
  ASSERT_TRUE(m->seq_cp(0, 2).is_ok());  // 2 shares 0's cells: {0,2} rows see them
  mask = mask_of(*m, batch({{3, {0, 2}}}), &n_kv, &dst);
  EXPECT_EQ(mask, (std::vector<float>{0, 0, H, 0, H, 0}));
  // 0 and 1 only share cell 0: a row of {0,1} sees cell 0 and itself.
  ASSERT_TRUE(m->seq_rm(0, 3, -1).is_ok());
  mask = mask_of(*m, batch({{3, {0, 1}}}), &n_kv, &dst);
  EXPECT_EQ(dst[0], 6);  // cell 5 (pos 3) still belongs to seq 2
  EXPECT_EQ(mask, (std::vector<float>{0, H, H, H, H, H, 0}));
}

TEST(KvStore, FreedCellsAreReusedAndNkvTracksUsage) {
  auto m = make({attn_layer()}, 8, 2);
  int n_kv = 0;
  std::vector<int32_t> dst;
  mask_of(*m, batch({{0, {0}}, {1, {0}}, {2, {0}}, {0, {1}}}), &n_kv, &dst);
  EXPECT_EQ(n_kv, 4);
  ASSERT_TRUE(m->seq_rm(0, -1, -1).is_ok());
  EXPECT_EQ(m->n_cells_used(), 1);
  mask_of(*m, batch({{1, {1}}}), &n_kv, &dst);
  EXPECT_EQ(dst[0], 0);  // first free cell, not a fresh one at the end
  EXPECT_EQ(n_kv, 4);    // cell 3 (seq 1 pos 0) is still the highest used
  ASSERT_TRUE(m->seq_rm(1, 0, 1).is_ok());  // frees cell 3
  mask_of(*m, batch({{2, {1}}}), &n_kv, &dst);
  EXPECT_EQ(dst[0], 1);
  EXPECT_EQ(n_kv, 2);    // attention cost follows the used cells
}

TEST(KvStore, FullCacheIsAnErrorNeverAnOverwrite) {
  auto m = make({attn_layer()}, 3, 2);
  toy::ToyModel model({attn_layer()});
  std::vector<float> out;
  ASSERT_TRUE(toy::decode(*m, model, batch({{0, {0}}, {1, {0}}, {2, {0}}}), out).is_ok());
  const auto before = *m->serialize("x");
  Status st = toy::decode(*m, model, batch({{0, {1}}}), out);
  EXPECT_EQ(st.code(), StatusCode::kOutOfMemory);
  EXPECT_EQ(*m->serialize("x"), before);
}

// Rotation of adjacent pairs (2i, 2i+1) / NeoX pairs (i, i+n_rot/2) by
// pos·freq_scale·base^(-2i/n_rot), written from the RoPE definition.
std::vector<float> rope_ref(std::vector<float> x, int n_heads, int hd, float pos, const kernels::RopeParams& p) {
  for (int h = 0; h < n_heads; ++h) {
    for (int i = 0; i < p.n_rot / 2; ++i) {
      const double theta = pos * p.freq_scale * std::pow(double(p.freq_base), -2.0 * i / p.n_rot);
      const int a = p.style == kernels::RopeStyle::kNormal ? 2 * i : i;
      const int b = p.style == kernels::RopeStyle::kNormal ? 2 * i + 1 : i + p.n_rot / 2;
      const double x0 = x[h * hd + a], x1 = x[h * hd + b];
      x[h * hd + a] = static_cast<float>(x0 * std::cos(theta) - x1 * std::sin(theta));
      x[h * hd + b] = static_cast<float>(x0 * std::sin(theta) + x1 * std::cos(theta));
    }
  }
  return x;
}

std::vector<float> base_key(int pos, int n) {
  std::vector<float> k(n);
  for (int j = 0; j < n; ++j) k[j] = std::sin(0.37f * j + 1.3f * pos) + 0.1f * j;
  return k;
}

void check_shift(DType type, kernels::RopeStyle style, float tol) {
  const int H = 2, D = 8;
  LayerSpec rope_l = attn_layer(H, D);
  rope_l.attn.rope = kernels::RopeParams{style, 6, 500.0f, 0.5f};
  LayerSpec nope_l = attn_layer(H, D);
  auto m = make({rope_l, nope_l}, 16, 2, type);
  // Place 6 tokens of seq 0 and 2 of seq 1 sharing the first cell; write keys
  // rotated at their position (RoPE layer) and unrotated (NoPE layer).
  Batch b = batch({{0, {0, 1}}, {1, {0}}, {2, {0}}, {3, {0}}, {4, {0}}, {5, {0}}, {1, {1}}});
  auto p = m->plan(b);
  ASSERT_TRUE(p.is_ok());
  auto a = m->apply(*p, 0);
  ASSERT_TRUE(a.is_ok());
  for (int l = 0; l < 2; ++l) {
    KvView kv = a->memory->kv(l);
    for (int r = 0; r < b.size(); ++r) {
      std::vector<float> k = base_key(b.pos[r], H * D);
      if (l == 0) k = rope_ref(k, H, D, b.pos[r], *rope_l.attn.rope);
      uint8_t* row = static_cast<uint8_t*>(kv.k) + size_t(kv.dst_cells[r]) * kv.k_row_bytes;
      for (int j = 0; j < H * D; ++j) {
        if (type == DType::F32) reinterpret_cast<float*>(row)[j] = k[j];
        else reinterpret_cast<uint16_t*>(row)[j] = f32_to_fp16(k[j]);
      }
    }
  }
  m->commit(*p);
  // Context shift of seq 0: drop [1,3), move [3, inf) by -2; then halve [2, inf).
  ASSERT_TRUE(m->seq_rm(0, 1, 3).is_ok());
  ASSERT_TRUE(m->seq_add(0, 3, -1, -2).is_ok());
  EXPECT_EQ(m->seq_pos_max_attn(0), 3);
  ASSERT_TRUE(m->seq_div(0, 2, -1, 2).is_ok());  // pos 2,3 -> 1,1
  const auto& impl = m->impl();
  auto key_of = [&](int layer, int cell) {
    std::vector<float> k(H * D);
    const uint8_t* row = impl.kv.k_row(layer, cell);
    for (int j = 0; j < H * D; ++j)
      k[j] = type == DType::F32 ? reinterpret_cast<const float*>(row)[j]
                                : fp16_to_f32(reinterpret_cast<const uint16_t*>(row)[j]);
    return k;
  };
  // seq 0 now: orig pos 0 -> 0, 3 -> 1 -> 0 (3-2=1, not in [2,inf)), 4 -> 2 -> 1, 5 -> 3 -> 1.
  const std::vector<std::pair<int, int>> orig_new = {{0, 0}, {3, 1}, {4, 1}, {5, 1}};
  std::multimap<int32_t, int32_t> cells(impl.kv.cells().seq_cells(0).begin(), impl.kv.cells().seq_cells(0).end());
  ASSERT_EQ(cells.size(), 4u);
  std::vector<int> got_pos;
  for (auto& [pp, c] : cells) got_pos.push_back(pp);
  EXPECT_EQ(got_pos, (std::vector<int>{0, 1, 1, 1}));
  for (auto [orig, now] : orig_new) {
    // Identify the cell by the NoPE key, which never changes.
    int cell = -1;
    for (auto& [pp, c] : cells)
      if (std::abs(key_of(1, c)[3] - base_key(orig, H * D)[3]) < 1e-2f && pp == now) cell = c;
    ASSERT_GE(cell, 0) << "orig pos " << orig;
    const auto want = rope_ref(base_key(orig, H * D), H, D, float(now), *rope_l.attn.rope);
    const auto got = key_of(0, cell);
    for (int j = 0; j < H * D; ++j) EXPECT_NEAR(got[j], want[j], tol) << "orig " << orig << " j " << j;
    const auto nope = key_of(1, cell);
    const auto nope_want = base_key(orig, H * D);
    for (int j = 0; j < H * D; ++j) EXPECT_NEAR(nope[j], nope_want[j], 2e-3f);
  }
  // Seq 1 still sees its shared pos-0 key unshifted and its own pos 1.
  EXPECT_EQ(m->seq_pos_min_attn(1), 0);
  EXPECT_EQ(m->seq_pos_max_attn(1), 1);
  const int c10 = impl.kv.cells().find(1, 0);
  ASSERT_GE(c10, 0);
  const auto k10 = key_of(0, c10);
  const auto want10 = rope_ref(base_key(0, H * D), H, D, 0.0f, *rope_l.attn.rope);
  for (int j = 0; j < H * D; ++j) EXPECT_NEAR(k10[j], want10[j], tol);
  // Shifting seq 1 moves its shared pos-0 cell: it is copied, seq 0 keeps the original.
  ASSERT_TRUE(m->seq_add(1, 0, -1, 5).is_ok());
  EXPECT_EQ(m->seq_pos_min_attn(0), 0);
  EXPECT_EQ(m->seq_pos_min_attn(1), 5);
  EXPECT_EQ(impl.kv.cells().find(0, 0), c10);
  const int c15 = impl.kv.cells().find(1, 5);
  ASSERT_GE(c15, 0);
  ASSERT_NE(c15, c10);
  const auto k15 = key_of(0, c15);
  const auto want15 = rope_ref(base_key(0, H * D), H, D, 5.0f, *rope_l.attn.rope);
  const auto k00 = key_of(0, c10);
  for (int j = 0; j < H * D; ++j) {
    EXPECT_NEAR(k15[j], want15[j], tol);
    EXPECT_NEAR(k00[j], want10[j], tol);
  }
}

TEST(KvStore, SeqAddSeqDivReRotateRopeKeysF32) { check_shift(DType::F32, kernels::RopeStyle::kNormal, 1e-4f); }
TEST(KvStore, SeqAddSeqDivReRotateRopeKeysF16Neox) { check_shift(DType::F16, kernels::RopeStyle::kNeox, 8e-3f); }

TEST(KvStore, SeqAddRefusesDuplicatePositions) {
  auto m = make({attn_layer()}, 8, 2);
  toy::ToyModel model({attn_layer()});
  std::vector<float> out;
  ASSERT_TRUE(toy::decode(*m, model, batch({{0, {0}}, {1, {0}}, {2, {0}}}), out).is_ok());
  const auto before = *m->serialize("x");
  Status st = m->seq_add(0, 2, -1, -1);  // 2 -> 1 collides with the kept 1
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*m->serialize("x"), before);
  EXPECT_TRUE(m->seq_add(0, 0, -1, -1).is_ok());  // everything moves: pos 0 drops below 0
  EXPECT_EQ(m->seq_pos_min_attn(0), 0);
  EXPECT_EQ(m->seq_pos_max_attn(0), 1);
  EXPECT_EQ(m->n_cells_used(), 2);
}

TEST(KvStore, RollbackOfReplayRestoresRewrittenCells) {
  // Hybrid: after a suffix seq_rm the kept tokens are replayed into their
  // existing cells. If the replay fails, the old K/V come back.
  std::vector<LayerSpec> specs = {toy::rec_layer(), attn_layer()};
  auto m = make(specs, 8, 2);
  toy::ToyModel model(specs);
  std::vector<float> out;
  ASSERT_TRUE(toy::decode(*m, model, batch({{0, {0}}, {1, {0}}, {2, {0}}, {3, {0}}}), out).is_ok());
  auto rm = m->seq_rm(0, 3, -1);
  ASSERT_TRUE(rm.is_ok());
  EXPECT_EQ(rm->replay_from, 0);  // no snapshot: replay from the start
  EXPECT_EQ(rm->replay_end, 3);
  const auto before = *m->serialize("x");
  auto p = m->plan(batch({{0, {0}}, {1, {0}}, {2, {0}}}));
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  auto a = m->apply(*p, 0);
  ASSERT_TRUE(a.is_ok());
  KvView kv = a->memory->kv(1);
  for (int r = 0; r < 3; ++r) {
    EXPECT_LT(kv.dst_cells[r], 3);  // the existing cells, not new ones
    std::memset(static_cast<uint8_t*>(kv.v) + size_t(kv.dst_cells[r]) * kv.v_row_bytes, 0x7f, kv.v_row_bytes);
  }
  m->rollback(*p);
  EXPECT_EQ(*m->serialize("x"), before);
}

}  // namespace
}  // namespace tandem::memory
