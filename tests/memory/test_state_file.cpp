// State files: round trips (whole memory and one sequence, snapshots
// included), and refusal of truncated / corrupt / foreign files with memory
// left unchanged.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "memory/state_format.h"
#include "toy.h"

namespace tandem::memory {
namespace {

using toy::attn_layer;
using toy::rec_layer;

std::vector<LayerSpec> hybrid_specs() { return {rec_layer(), attn_layer(), toy::both_layer()}; }

std::unique_ptr<HybridMemory> make(std::vector<LayerSpec> specs, int n_ctx = 32, int snapshots = 2) {
  MemoryOptions o;
  o.n_ctx = n_ctx;
  o.n_seq_max = 3;
  o.n_ubatch = 3;
  o.kv_type = DType::F16;
  o.snapshot_slots = snapshots;
  auto m = HybridMemory::create(std::move(specs), o);
  EXPECT_TRUE(m.is_ok());
  return std::move(*m);
}

void fill(HybridMemory& m, toy::Reference& ref, int s, int n, int tok0) {
  toy::ToyModel model(m.layers());
  Batch b;
  std::vector<float> out;
  for (int t = 0; t < n; ++t) {
    const int32_t p = ref.next_pos(s);
    b.tokens.push_back(tok0 + t);
    b.pos.push_back(p + t);
    b.seq.push_back({s});
    b.output.push_back(1);
  }
  for (int t = 0; t < n; ++t) ref.decode_row({s}, b.tokens[t], b.pos[t]);
  ASSERT_TRUE(toy::decode(m, model, b, out).is_ok());
}

std::string temp_path(const char* name) {
  return ::testing::TempDir() + "/tandem_mem_" + name + "_" + std::to_string(::getpid());
}

TEST(StateFile, Crc32KnownValue) {
  const char* s = "123456789";  // the standard CRC-32 check value
  EXPECT_EQ(state::crc32(reinterpret_cast<const uint8_t*>(s), 9), 0xCBF43926u);
}

TEST(StateFile, WholeMemoryRoundTripThroughAFile) {
  auto m = make(hybrid_specs());
  toy::Reference ref(hybrid_specs(), 3);
  fill(*m, ref, 0, 5, 3);
  ASSERT_TRUE(m->seq_cp(0, 1).is_ok());
  ref.hist(1) = ref.hist(0);
  ASSERT_TRUE(m->snapshot(1).is_ok());
  fill(*m, ref, 1, 2, 40);
  fill(*m, ref, 2, 3, 80);
  const auto bytes = *m->serialize("model-A");
  const std::string path = temp_path("whole");
  ASSERT_TRUE(m->save_file(path, "model-A").is_ok());

  auto m2 = make(hybrid_specs());
  ASSERT_TRUE(m2->load_file(path, "model-A").is_ok());
  EXPECT_EQ(*m2->serialize("model-A"), bytes);
  EXPECT_EQ(toy::compare(*m2, ref), "");
  EXPECT_EQ(m2->n_slots_used(), m->n_slots_used());
  EXPECT_EQ(m2->capabilities(1).restore_points, (std::vector<int32_t>{4}));
  // Both continue identically.
  fill(*m2, ref, 0, 2, 9);
  EXPECT_EQ(toy::compare(*m2, ref), "");
  std::remove(path.c_str());
}

TEST(StateFile, BadFilesAreRefusedAndMemoryUnchanged) {
  auto src = make(hybrid_specs());
  toy::Reference ref(hybrid_specs(), 3);
  fill(*src, ref, 0, 4, 1);
  ASSERT_TRUE(src->snapshot(0).is_ok());
  const auto good = *src->serialize("model-A");

  auto m = make(hybrid_specs());
  toy::Reference ref_m(hybrid_specs(), 3);
  fill(*m, ref_m, 1, 3, 11);
  const auto before = *m->serialize("model-A");
  auto expect_refused = [&](std::span<const uint8_t> bytes, StatusCode code, const char* what) {
    Status st = m->deserialize(bytes, "model-A");
    EXPECT_EQ(st.code(), code) << what << ": " << st.to_string();
    EXPECT_EQ(*m->serialize("model-A"), before) << what;
  };
  expect_refused(std::span<const uint8_t>(good).first(good.size() - 1), StatusCode::kCorrupt, "truncated by 1");
  expect_refused(std::span<const uint8_t>(good).first(20), StatusCode::kCorrupt, "truncated header");
  expect_refused({}, StatusCode::kCorrupt, "empty");
  for (size_t at : {size_t(3), size_t(30), good.size() / 2, good.size() - 1}) {
    auto bad = good;
    bad[at] ^= 0x10;
    Status st = m->deserialize(bad, "model-A");
    EXPECT_FALSE(st.is_ok()) << "flip at " << at;
    EXPECT_EQ(*m->serialize("model-A"), before);
  }
  {
    Status st = m->deserialize(good, "model-B");
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("another model"), std::string::npos) << st.message();
    EXPECT_EQ(*m->serialize("model-A"), before);
  }
  // Another layout (layer specs) or another n_ctx.
  auto other = make({rec_layer(), attn_layer(1, 4)});
  EXPECT_EQ(other->deserialize(good, "model-A").code(), StatusCode::kInvalidArgument);
  auto small = make(hybrid_specs(), 16);
  Status st = small->deserialize(good, "model-A");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("n_ctx"), std::string::npos);
  // A sequence file is not a memory file.
  auto seq = *src->serialize_seq(0, "model-A");
  EXPECT_EQ(m->deserialize(seq, "model-A").code(), StatusCode::kInvalidArgument);
  // Missing file.
  EXPECT_EQ(m->load_file(temp_path("does_not_exist"), "model-A").code(), StatusCode::kNotFound);
  EXPECT_EQ(*m->serialize("model-A"), before);
}

TEST(StateFile, SequenceRoundTripIntoAnotherId) {
  auto m = make(hybrid_specs(), 32, 3);
  toy::Reference ref(hybrid_specs(), 3);
  fill(*m, ref, 0, 3, 5);
  ASSERT_TRUE(m->snapshot(0).is_ok());
  fill(*m, ref, 0, 3, 50);
  const std::string path = temp_path("seq");
  ASSERT_TRUE(m->save_seq_file(path, 0, "fp").is_ok());

  // Into sequence 2 of a memory that already holds something in 0.
  auto m2 = make(hybrid_specs(), 32, 3);
  toy::Reference ref2(hybrid_specs(), 3);
  fill(*m2, ref2, 0, 2, 70);
  EXPECT_EQ(m2->load_seq_file(path, 0, "fp").code(), StatusCode::kInvalidArgument);  // not empty
  ASSERT_TRUE(m2->load_seq_file(path, 2, "fp").is_ok());
  ref2.hist(2) = ref.hist(0);
  EXPECT_EQ(toy::compare(*m2, ref2), "");
  // The snapshot came along: a suffix removal rolls back to it.
  EXPECT_EQ(m2->capabilities(2).restore_points, (std::vector<int32_t>{2}));
  auto out = m2->seq_rm(2, 4, -1);
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ(out->replay_from, 3);
  EXPECT_EQ(out->replay_end, 4);
  std::remove(path.c_str());

  // Not enough free cells: refused, unchanged.
  auto tiny = make(hybrid_specs(), 4, 0);
  toy::Reference ref3(hybrid_specs(), 3);
  fill(*tiny, ref3, 1, 2, 1);
  const auto before = *tiny->serialize("fp");
  auto bytes = *m->serialize_seq(0, "fp");
  EXPECT_EQ(tiny->deserialize_seq(bytes, 0, "fp").code(), StatusCode::kOutOfMemory);
  EXPECT_EQ(*tiny->serialize("fp"), before);
  // Corrupt / truncated sequence files.
  bytes.back() ^= 1;
  EXPECT_EQ(m2->deserialize_seq(bytes, 1, "fp").code(), StatusCode::kCorrupt);
  bytes.pop_back();
  EXPECT_EQ(m2->deserialize_seq(bytes, 1, "fp").code(), StatusCode::kCorrupt);
  EXPECT_TRUE(m2->seq_empty(1));
}

TEST(StateFile, SaveIsAtomic) {
  auto m = make(hybrid_specs());
  toy::Reference ref(hybrid_specs(), 3);
  fill(*m, ref, 0, 2, 1);
  // Saving into a missing directory fails cleanly and leaves nothing behind.
  const std::string bad = temp_path("no_dir") + "/x/state.bin";
  EXPECT_EQ(m->save_file(bad, "fp").code(), StatusCode::kIo);
}

}  // namespace
}  // namespace tandem::memory
