// Self-consistency of the Context on the fixture models (DESIGN §5): the same
// tokens give the same logits however they are batched, split, shared, forked,
// cut back, rolled back or saved and loaded. Rows are compared by NMSE against
// the tolerance the goldens use for float weights (1e-5): different splits run
// different but equivalent arithmetic (chunked vs stepwise scans, batched
// matmuls), so bit equality is not expected except where the computation is
// literally the same (save/load).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "runtime/replay.h"
#include "runtime_test_util.h"
#include "tandem/tandem.h"

namespace {

namespace fs = std::filesystem;
using tandem::rttest::test_threads;
constexpr double kTol = 1e-5;

using tandem::rttest::Tokens;
using Rows = std::vector<std::vector<float>>;

// Prompts of the golden manifests.
using tandem::rttest::kP0;
using tandem::rttest::kP1;
using tandem::rttest::kP2;
using tandem::rttest::kP3;
using tandem::rttest::load;

std::unique_ptr<tandem::Context> make_ctx(const tandem::Model& m, int n_seq = 1, int n_ubatch = 512,
                                          int snapshot_slots = 0, bool auto_snap = false) {
  tandem::ContextOptions o;
  o.n_ctx = 256;
  o.n_seq_max = n_seq;
  o.n_ubatch = n_ubatch;
  o.n_threads = test_threads();
  o.snapshot_slots = snapshot_slots;
  o.auto_snapshot = auto_snap;
  auto c = tandem::Context::create(m, o);
  EXPECT_TRUE(c.ok()) << c.error();
  return c.ok() ? std::move(c).value() : nullptr;
}

Rows take(const tandem::Context& c) {
  Rows r;
  for (int i = 0; i < c.n_outputs(); ++i) r.emplace_back(c.logits(i), c.logits(i) + c.n_vocab());
  return r;
}

// Decodes tokens at positions start.. for one sequence set; logits for every row.
Rows run(tandem::Context& c, const Tokens& t, int start, std::vector<int32_t> seqs, bool all_out = true) {
  tandem::Batch b;
  for (size_t i = 0; i < t.size(); ++i) b.add(t[i], start + int(i), seqs, all_out || i + 1 == t.size());
  auto st = c.decode(b);
  EXPECT_TRUE(st.ok()) << st.message();
  return take(c);
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  const double e = tandem::runtime::nmse(a.data(), b.data(), int(a.size()));
  EXPECT_LE(e, kTol) << what;
}

void expect_rows_close(const Rows& a, const Rows& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) expect_close(a[i], b[i], what + " row " + std::to_string(i));
}

int argmax(const std::vector<float>& v) { return tandem::runtime::argmax(v.data(), int(v.size())); }

class PerModel : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    model_ = load(GetParam());
    ASSERT_NE(model_, nullptr);
  }
  std::unique_ptr<tandem::Model> model_;
};

// Whole prompt = token by token = micro-batches of 1..7 tokens.
TEST_P(PerModel, PromptSplitsAgree) {
  auto c = make_ctx(*model_);
  const Rows whole = run(*c, kP0, 0, {0});
  ASSERT_EQ(whole.size(), kP0.size());

  auto s = make_ctx(*model_);
  Rows step;
  for (size_t i = 0; i < kP0.size(); ++i) step.push_back(run(*s, {kP0[i]}, int(i), {0})[0]);
  expect_rows_close(step, whole, "token by token");

  for (int ub = 1; ub <= 7; ++ub) {
    auto u = make_ctx(*model_, 1, ub);
    expect_rows_close(run(*u, kP0, 0, {0}), whole, "n_ubatch " + std::to_string(ub));
  }
  // Several decode calls of uneven sizes.
  auto v = make_ctx(*model_, 1, 3);
  Rows parts;
  size_t at = 0;
  for (size_t len : {5u, 1u, 7u, 3u}) {
    Tokens t(kP0.begin() + at, kP0.begin() + at + len);
    for (auto& r : run(*v, t, int(at), {0})) parts.push_back(std::move(r));
    at += len;
  }
  expect_rows_close(parts, whole, "calls of 5,1,7,3");
}

// Four sequences in one batch = each alone; then greedy steps together.
TEST_P(PerModel, ParallelEqualsAlone) {
  const std::vector<Tokens> ps = {kP0, kP1, kP2, kP3};
  auto c = make_ctx(*model_, 4);
  tandem::Batch b;
  for (int s = 0; s < 4; ++s)
    for (size_t i = 0; i < ps[s].size(); ++i) b.add(ps[s][i], int(i), {s}, i + 1 == ps[s].size());
  ASSERT_TRUE(c->decode(b).ok());
  Rows together = take(*c);
  std::vector<Rows> steps_together(4);
  for (int s = 0; s < 4; ++s) steps_together[s].push_back(together[s]);
  for (int step = 0; step < 3; ++step) {
    tandem::Batch g;
    for (int s = 0; s < 4; ++s) g.add(argmax(steps_together[s].back()), int(ps[s].size()) + step, {s}, true);
    ASSERT_TRUE(c->decode(g).ok());
    Rows r = take(*c);
    for (int s = 0; s < 4; ++s) steps_together[s].push_back(r[s]);
  }
  for (int s = 0; s < 4; ++s) {
    auto a = make_ctx(*model_);
    Rows alone = {run(*a, ps[s], 0, {0}, false)[0]};
    for (int step = 0; step < 3; ++step)
      alone.push_back(run(*a, {argmax(steps_together[s][step])}, int(ps[s].size()) + step, {0})[0]);
    expect_rows_close(alone, steps_together[s], "sequence " + std::to_string(s));
  }
}

// seq_cp fork = a fresh run of the same tokens.
TEST_P(PerModel, ForkEqualsFresh) {
  auto c = make_ctx(*model_, 3);
  run(*c, kP0, 0, {0}, false);
  ASSERT_TRUE(c->seq_cp(0, 1).ok());
  ASSERT_TRUE(c->seq_cp(0, 2).ok());
  EXPECT_EQ(c->seq_tokens(2), kP0);
  const int n = int(kP0.size());
  const Tokens next = {300, 301, 302};
  tandem::Batch b;
  for (int s = 0; s < 3; ++s) b.add(next[s], n, {s}, true);
  ASSERT_TRUE(c->decode(b).ok());
  Rows forked = take(*c);
  for (int s = 0; s < 3; ++s) {
    auto f = make_ctx(*model_);
    Tokens t = kP0;
    t.push_back(next[s]);
    expect_close(run(*f, t, 0, {0}, false)[0], forked[s], "fork " + std::to_string(s));
  }
}

// Prompt rows shared by two sequences = two separate runs (Tandem accepts
// this for purely recurrent models too, where the reference refuses).
TEST_P(PerModel, SharedPromptEqualsSeparate) {
  auto c = make_ctx(*model_, 2);
  run(*c, kP2, 0, {0, 1}, false);
  const int n = int(kP2.size());
  tandem::Batch b;
  b.add(426, n, {0}, true);
  b.add(385, n, {1}, true);
  ASSERT_TRUE(c->decode(b).ok());
  Rows shared = take(*c);
  b.clear();
  b.add(300, n + 1, {0}, true);
  b.add(301, n + 1, {1}, true);
  ASSERT_TRUE(c->decode(b).ok());
  Rows shared2 = take(*c);
  const Tokens a1 = {426, 300}, a2 = {385, 301};
  for (int s = 0; s < 2; ++s) {
    auto f = make_ctx(*model_);
    run(*f, kP2, 0, {0}, false);
    Rows r = run(*f, s == 0 ? a1 : a2, n, {0});
    expect_close(r[0], shared[s], "shared, first step, seq " + std::to_string(s));
    expect_close(r[1], shared2[s], "shared, second step, seq " + std::to_string(s));
  }
}

// A suffix cut back into the prompt, then other tokens = a fresh run of the
// kept prefix plus those tokens (restore + replay on recurrent layers).
TEST_P(PerModel, TruncateEqualsFresh) {
  for (bool snaps : {false, true}) {
    SCOPED_TRACE(snaps ? "with auto snapshots" : "replay from empty");
    auto c = make_ctx(*model_, 2, 512, snaps ? 8 : 0, snaps);
    run(*c, Tokens(kP0.begin(), kP0.begin() + 8), 0, {0}, false);  // snapshot at 7 (auto)
    run(*c, Tokens(kP0.begin() + 8, kP0.end()), 8, {0}, false);     // snapshot at 15
    run(*c, kP1, 0, {1}, false);
    ASSERT_TRUE(c->seq_rm(0, 11, -1).ok());
    EXPECT_EQ(c->seq_pos_max(0), 10);
    EXPECT_EQ(c->seq_tokens(0), Tokens(kP0.begin(), kP0.begin() + 11));
    tandem::Batch b;
    b.add(291, 11, {0}, true);
    b.add(426, int(kP1.size()), {1}, true);
    ASSERT_TRUE(c->decode(b).ok());
    Rows r = take(*c);

    auto f = make_ctx(*model_);
    Tokens t(kP0.begin(), kP0.begin() + 11);
    t.push_back(291);
    expect_close(run(*f, t, 0, {0}, false)[0], r[0], "cut sequence");
    auto g = make_ctx(*model_);
    Tokens u = kP1;
    u.push_back(426);
    expect_close(run(*g, u, 0, {0}, false)[0], r[1], "untouched sequence");
  }
}

// A cancelled decode (after its first micro-batch) leaves memory as before:
// continuing gives the same logits as a context that never saw it.
TEST_P(PerModel, CancelledDecodeRollsBack) {
  auto c = make_ctx(*model_, 2, 4);
  run(*c, kP0, 0, {0}, false);
  int calls = 0;
  c->set_cancel_callback([&] { return ++calls > 1; });
  tandem::Batch b;
  for (int i = 0; i < 10; ++i) b.add(kP1[i], int(kP0.size()) + i, {0}, true);
  for (int i = 0; i < 6; ++i) b.add(kP2[i], i, {1}, true);
  auto st = c->decode(b);
  EXPECT_EQ(st.code(), tandem::Errc::kCancelled);
  c->set_cancel_callback(nullptr);
  EXPECT_EQ(c->seq_pos_max(0), int(kP0.size()) - 1);
  EXPECT_EQ(c->seq_pos_max(1), -1);
  EXPECT_EQ(c->seq_tokens(0), kP0);

  Rows r = run(*c, {300}, int(kP0.size()), {0});
  auto f = make_ctx(*model_);
  Tokens t = kP0;
  t.push_back(300);
  expect_close(run(*f, t, 0, {0}, false)[0], r[0], "after rollback");
}

// A batch the memory refuses changes nothing.
TEST_P(PerModel, RefusedBatchChangesNothing) {
  auto c = make_ctx(*model_, 2);
  run(*c, kP0, 0, {0}, false);
  tandem::Batch b;
  b.add(300, int(kP0.size()), {0}, true);
  b.add(301, int(kP0.size()) + 2, {0}, true);  // position gap
  EXPECT_FALSE(c->decode(b).ok());
  b.clear();
  b.add(300, 0, {5}, true);  // sequence id out of range
  EXPECT_FALSE(c->decode(b).ok());
  b.clear();
  b.add(100000, int(kP0.size()), {0}, true);  // token out of range
  EXPECT_FALSE(c->decode(b).ok());
  EXPECT_EQ(c->seq_pos_max(0), int(kP0.size()) - 1);
  Rows r = run(*c, {300}, int(kP0.size()), {0});
  auto f = make_ctx(*model_);
  Tokens t = kP0;
  t.push_back(300);
  expect_close(run(*f, t, 0, {0}, false)[0], r[0], "after refused batches");
}

// save/load (whole context and one sequence) = identity.
TEST_P(PerModel, SaveLoadIdentity) {
  const fs::path dir = fs::temp_directory_path() / ("tandem_rt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto c = make_ctx(*model_, 2);
  run(*c, kP0, 0, {0}, false);
  run(*c, kP1, 0, {1}, false);
  ASSERT_TRUE(c->save((dir / "ctx.bin").string()).ok());
  ASSERT_TRUE(c->save_seq((dir / "seq1.bin").string(), 1).ok());
  tandem::Batch b;
  b.add(300, int(kP0.size()), {0}, true);
  b.add(301, int(kP1.size()), {1}, true);
  ASSERT_TRUE(c->decode(b).ok());
  Rows want = take(*c);

  auto d = make_ctx(*model_, 2);
  auto st = d->load((dir / "ctx.bin").string());
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(d->seq_tokens(1), kP1);
  ASSERT_TRUE(d->decode(b).ok());
  Rows got = take(*d);
  for (int i = 0; i < 2; ++i)
    EXPECT_EQ(tandem::runtime::nmse(got[i].data(), want[i].data(), d->n_vocab()), 0.0) << "whole, row " << i;

  // Sequence 1's file into sequence 0 of a fresh context.
  auto e = make_ctx(*model_, 2);
  st = e->load_seq((dir / "seq1.bin").string(), 0);
  ASSERT_TRUE(st.ok()) << st.message();
  Rows one = run(*e, {301}, int(kP1.size()), {0});
  EXPECT_EQ(tandem::runtime::nmse(one[0].data(), want[1].data(), e->n_vocab()), 0.0) << "one sequence";

  // A damaged file is refused and leaves the context as it was.
  {
    std::string bytes;
    {
      std::ifstream in(dir / "ctx.bin", std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    bytes[bytes.size() / 2] ^= 0x5a;
    std::ofstream(dir / "bad.bin", std::ios::binary) << bytes;
  }
  EXPECT_FALSE(e->load((dir / "bad.bin").string()).ok());
  Tokens want_hist = kP1;
  want_hist.push_back(301);
  EXPECT_EQ(e->seq_tokens(0), want_hist);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PerModel,
                         ::testing::Values("tiny-llama", "tiny-mamba", "tiny-mamba2", "tiny-granitehybrid",
                                           "tiny-granitehybrid-moe", "tiny-jamba", "tiny-falcon-h1",
                                           "tiny-nemotron-h"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

// Recurrent memory cannot cut the middle of a sequence: refused, nothing changes.
TEST(ContextRecurrent, MiddleCutRefused) {
  auto m = load("tiny-mamba2");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->kind(), tandem::ModelKind::kRecurrent);
  auto c = make_ctx(*m);
  run(*c, kP0, 0, {0}, false);
  EXPECT_FALSE(c->seq_rm(0, 3, 6).ok());
  EXPECT_EQ(c->seq_pos_max(0), int(kP0.size()) - 1);
  EXPECT_EQ(c->seq_tokens(0), kP0);
}

// --no-mmap (WeightLoad::kRead): the same logits, bit for bit, as the mapped
// file (--mmap), for a quantized and a float model.
TEST(ContextModel, ReadIntoMemoryGivesTheSameLogitsAsMmap) {
  for (const char* name : {"tiny-granitehybrid-256-q4_k_m", "tiny-granitehybrid"}) {
    const fs::path p = fs::path(TANDEM_FIXTURES) / "models" / (std::string(name) + ".gguf");
    tandem::ModelOptions read, map;
    read.weights = tandem::WeightLoad::kRead;
    map.weights = tandem::WeightLoad::kMmap;
    auto mapped = tandem::Model::load(p.string(), map);
    auto copied = tandem::Model::load(p.string(), read);
    ASSERT_TRUE(mapped.ok()) << mapped.error();
    ASSERT_TRUE(copied.ok()) << copied.error();
    EXPECT_FALSE((*mapped)->weights_in_memory());
    EXPECT_TRUE((*copied)->weights_in_memory());
    auto ca = make_ctx(**mapped);
    auto cb = make_ctx(**copied);
    ASSERT_NE(ca, nullptr);
    ASSERT_NE(cb, nullptr);
    const Tokens prompt = (*mapped)->tokenize("Once upon a time, there was a little girl named Lily.");
    const Rows a = run(*ca, prompt, 0, {0});
    const Rows b = run(*cb, prompt, 0, {0});
    ASSERT_EQ(a.size(), b.size()) << name;
    for (size_t i = 0; i < a.size(); ++i)
      ASSERT_EQ(0, std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float))) << name << " row " << i;
  }
}

TEST(ContextModel, Kinds) {
  auto g = load("tiny-granitehybrid");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->kind(), tandem::ModelKind::kHybrid);
  const auto k = g->layer_kinds();
  ASSERT_EQ(k.size(), 6u);
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(k[i], (i == 2 || i == 5) ? tandem::LayerKind::kAttention : tandem::LayerKind::kRecurrent) << i;
  auto l = load("tiny-llama");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->kind(), tandem::ModelKind::kAttentionOnly);
  EXPECT_FALSE(l->is_quantized());
  auto q = load("tiny-granitehybrid-256-q4_k_m");
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(q->is_quantized());
  auto f = load("tiny-granitehybrid-256-bf16");
  ASSERT_NE(f, nullptr);
  EXPECT_FALSE(f->is_quantized());
  // Tokenizer access: the manifest's ids for its prompt text.
  EXPECT_EQ(g->tokenize("Once upon a time, there was a little girl named Lily."), kP0);
  EXPECT_EQ(g->detokenize(kP0), "Once upon a time, there was a little girl named Lily.");
  EXPECT_EQ(g->bos(), 1);
  EXPECT_TRUE(g->is_eog(g->eos()));
}

}  // namespace
