// In-process tests of the radix prefix cache (src/runtime/prefix_cache.h) and
// of the chat prompt builder: a sequence restored from a cached prefix then
// fed the rest gives the logits of a sequence that processed everything
// (hybrid and attention-only models), the tree finds the longest prefix that
// ends at a snapshot, and the budget evicts least recently used leaves without
// touching referenced nodes or live sequences.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "runtime/prefix_cache.h"
#include "runtime/server/chat_prompt.h"
#include "tandem/tandem.h"

namespace tandem {
namespace {

std::string bundled_model() { return std::string(TANDEM_SOURCE_DIR) + "/models/tiny-hybrid-stories.gguf"; }
std::string fixture_model(const char* name) { return std::string(TANDEM_FIXTURES) + "/models/" + name; }

std::unique_ptr<Context> make_ctx(const Model& m, int n_seq, int snapshot_slots, int n_ctx = 512) {
  ContextOptions co;
  co.n_ctx = n_ctx;
  co.n_seq_max = n_seq;
  co.n_threads = 1;
  co.snapshot_slots = snapshot_slots;
  auto c = Context::create(m, co);
  EXPECT_TRUE(c.ok()) << c.error();
  return c.ok() ? std::move(c).value() : nullptr;
}

// Decodes tokens [from, to) of `toks` into `seq` (logits of the last one).
void feed(Context& ctx, int seq, const std::vector<int32_t>& toks, int from, int to) {
  Batch b;
  for (int i = from; i < to; ++i) b.add(toks[static_cast<size_t>(i)], i, {seq}, i + 1 == to);
  ASSERT_TRUE(ctx.decode(b)) << "decode of [" << from << ", " << to << ") into sequence " << seq;
}

std::vector<float> last_logits(const Context& ctx) {
  const float* l = ctx.logits(ctx.n_outputs() - 1);
  return std::vector<float>(l, l + ctx.n_vocab());
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

// The truth: a fresh context that decodes the same chunks with no cache.
std::vector<float> fresh_logits(const Model& m, const std::vector<int32_t>& toks, int split) {
  auto ctx = make_ctx(m, 1, 0);
  feed(*ctx, 0, toks, 0, split);
  feed(*ctx, 0, toks, split, static_cast<int>(toks.size()));
  return last_logits(*ctx);
}

void restore_matches_full_processing(const std::string& path) {
  auto m = Model::load(path);
  ASSERT_TRUE(m.ok()) << m.error();
  const Model& model = **m;
  const auto shared = model.tokenize("Once upon a time, there was a little girl named Lily. She liked to play");
  auto a = shared, b = shared;
  for (int32_t t : model.tokenize(" in the park with her dog.", false)) a.push_back(t);
  for (int32_t t : model.tokenize(" with her red ball every day.", false)) b.push_back(t);
  ASSERT_GT(a.size(), shared.size());

  auto ctx = make_ctx(model, 2, 8);
  PrefixCache cache(*ctx, {.max_bytes = size_t{64} << 20, .max_snapshots = 8, .max_cells = 512});
  ASSERT_TRUE(cache.enabled());
  const int n_shared = static_cast<int>(shared.size());

  // Request 1 (sequence 0): nothing cached; snapshot the shared part, then the whole prompt.
  PrefixCache::Ref r0;
  EXPECT_EQ(cache.restore_longest(a, static_cast<int>(a.size()) - 1, 0, r0), 0);
  feed(*ctx, 0, a, 0, n_shared);
  EXPECT_TRUE(cache.insert(0, r0));
  feed(*ctx, 0, a, n_shared, static_cast<int>(a.size()));
  EXPECT_TRUE(cache.insert(0, r0));
  EXPECT_EQ(r0.depth(), static_cast<int>(a.size()));
  const auto la = last_logits(*ctx);
  EXPECT_LT(max_abs_diff(la, fresh_logits(model, a, n_shared)), 1e-4f);

  // Request 1 finishes: its sequence goes, the cache keeps its cells and state.
  cache.unref(r0);
  ASSERT_TRUE(ctx->seq_rm(0, -1, -1));

  // Request 2 (sequence 1) shares the first n_shared tokens: restored, not processed.
  PrefixCache::Ref r1;
  EXPECT_EQ(cache.restore_longest(b, static_cast<int>(b.size()) - 1, 1, r1), n_shared);
  EXPECT_EQ(ctx->seq_pos_max(1), n_shared - 1);
  EXPECT_EQ(ctx->seq_tokens(1), shared);
  feed(*ctx, 1, b, n_shared, static_cast<int>(b.size()));
  const auto lb = last_logits(*ctx);
  EXPECT_LT(max_abs_diff(lb, fresh_logits(model, b, n_shared)), 1e-4f);
  const auto st = cache.stats();
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.reused_tokens, static_cast<uint64_t>(n_shared));
  EXPECT_EQ(st.snapshots, 2);

  // Request 3 repeats prompt a exactly: the whole-prompt snapshot is too long
  // (one token must be decoded for logits); the shared-part one is taken.
  PrefixCache::Ref r2;
  ASSERT_TRUE(ctx->seq_rm(0, -1, -1));
  EXPECT_EQ(cache.restore_longest(a, static_cast<int>(a.size()) - 1, 0, r2), n_shared);
  // With room for the whole prompt, the whole prompt is restored.
  ASSERT_TRUE(ctx->seq_rm(0, -1, -1));
  cache.unref(r2);
  EXPECT_EQ(cache.restore_longest(a, static_cast<int>(a.size()), 0, r2), static_cast<int>(a.size()));
  EXPECT_EQ(ctx->seq_tokens(0), a);
  cache.unref(r2);
  cache.unref(r1);
}

TEST(PrefixCache, RestoredPrefixGivesTheLogitsOfFullProcessingHybrid) {
  restore_matches_full_processing(bundled_model());
}

TEST(PrefixCache, RestoredPrefixGivesTheLogitsOfFullProcessingAttentionOnly) {
  restore_matches_full_processing(fixture_model("tiny-llama.gguf"));
}

TEST(PrefixCache, RestoredPrefixGivesTheLogitsOfFullProcessingRecurrentOnly) {
  restore_matches_full_processing(fixture_model("tiny-mamba2.gguf"));
}

TEST(PrefixCache, LruEvictsLeavesAndKeepsReferencedNodes) {
  auto m = Model::load(bundled_model());
  ASSERT_TRUE(m.ok()) << m.error();
  const Model& model = **m;
  auto ctx = make_ctx(model, 2, 8);
  PrefixCache cache(*ctx, {.max_bytes = size_t{64} << 20, .max_snapshots = 3, .max_cells = 512});
  const auto base = model.tokenize("The little dog ran to the park");
  // Three conversations that share `base`: snapshot base, then base + tail i.
  auto with_tail = [&](const char* tail) {
    auto t = base;
    for (int32_t x : model.tokenize(tail, false)) t.push_back(x);
    return t;
  };
  const auto t1 = with_tail(" and played."), t2 = with_tail(" and slept."), t3 = with_tail(" and ate.");

  PrefixCache::Ref keep;  // a live request holding the `base` node
  feed(*ctx, 0, base, 0, static_cast<int>(base.size()));
  ASSERT_TRUE(cache.insert(0, keep));
  for (const auto* t : {&t1, &t2}) {
    PrefixCache::Ref r;
    ASSERT_TRUE(ctx->seq_rm(1, -1, -1));
    ASSERT_EQ(cache.restore_longest(*t, static_cast<int>(t->size()) - 1, 1, r), static_cast<int>(base.size()));
    feed(*ctx, 1, *t, static_cast<int>(base.size()), static_cast<int>(t->size()));
    ASSERT_TRUE(cache.insert(1, r));
    // The new snapshot is charged only the cells past `base` (its lineage).
    cache.unref(r);
  }
  auto st = cache.stats();
  EXPECT_EQ(st.snapshots, 3);
  EXPECT_EQ(st.cells, static_cast<int>(t1.size() + t2.size() - base.size()));
  EXPECT_EQ(ctx->n_snapshots(), 3);

  // Touch t1 (a lookup that restores it), then add t3: t2 is the LRU leaf.
  {
    PrefixCache::Ref r;
    ASSERT_TRUE(ctx->seq_rm(1, -1, -1));
    ASSERT_EQ(cache.restore_longest(t1, static_cast<int>(t1.size()), 1, r), static_cast<int>(t1.size()));
    cache.unref(r);
  }
  {
    PrefixCache::Ref r;
    ASSERT_TRUE(ctx->seq_rm(1, -1, -1));
    ASSERT_EQ(cache.restore_longest(t3, static_cast<int>(t3.size()) - 1, 1, r), static_cast<int>(base.size()));
    feed(*ctx, 1, t3, static_cast<int>(base.size()), static_cast<int>(t3.size()));
    ASSERT_TRUE(cache.insert(1, r));
    cache.unref(r);
  }
  st = cache.stats();
  EXPECT_EQ(st.snapshots, 3);
  EXPECT_EQ(st.snapshots_evicted, 1u);
  EXPECT_EQ(ctx->n_snapshots(), 3);
  PrefixCache::Ref probe;
  ASSERT_TRUE(ctx->seq_rm(1, -1, -1));
  EXPECT_EQ(cache.restore_longest(t2, static_cast<int>(t2.size()), 1, probe), static_cast<int>(base.size()))
      << "t2 (least recently used) should have been evicted";
  cache.unref(probe);
  ASSERT_TRUE(ctx->seq_rm(1, -1, -1));
  EXPECT_EQ(cache.restore_longest(t1, static_cast<int>(t1.size()), 1, probe), static_cast<int>(t1.size()));
  cache.unref(probe);

  // Evicting everything unreferenced keeps `base` (held by `keep`), and the
  // live sequence 0 is untouched: it still continues exactly.
  cache.clear();
  EXPECT_EQ(cache.stats().snapshots, 1);
  EXPECT_EQ(ctx->seq_tokens(0), base);
  feed(*ctx, 0, t1, static_cast<int>(base.size()), static_cast<int>(t1.size()));
  EXPECT_LT(max_abs_diff(last_logits(*ctx), fresh_logits(model, t1, static_cast<int>(base.size()))), 1e-4f);
  cache.unref(keep);
  cache.clear();
  EXPECT_EQ(cache.stats().snapshots, 0);
  EXPECT_EQ(cache.stats().cells, 0);
  EXPECT_EQ(ctx->n_snapshots(), 0);
  // Only sequence 0's cells remain in use.
  ASSERT_TRUE(ctx->seq_rm(1, -1, -1));
  EXPECT_EQ(ctx->n_cells_used(), static_cast<int>(t1.size()));
  ASSERT_TRUE(ctx->seq_rm(0, -1, -1));
  EXPECT_EQ(ctx->n_cells_used(), 0);
  EXPECT_EQ(ctx->n_slots_used(), 0);
}

TEST(PrefixCache, ByteBudgetLimitsWhatIsHeld) {
  auto m = Model::load(bundled_model());
  ASSERT_TRUE(m.ok()) << m.error();
  auto ctx = make_ctx(**m, 1, 8);
  const size_t state = ctx->state_bytes(), cell = ctx->cell_bytes();
  ASSERT_GT(state, 0u);
  ASSERT_GT(cell, 0u);
  const auto toks = (*m)->tokenize("Once upon a time, there was a big tree in the forest");
  // Room for one snapshot of the first 4 tokens, not for two.
  PrefixCache cache(*ctx, {.max_bytes = state + 4 * cell, .max_snapshots = 8, .max_cells = 100});
  PrefixCache::Ref r;
  feed(*ctx, 0, toks, 0, 4);
  EXPECT_TRUE(cache.insert(0, r));
  feed(*ctx, 0, toks, 4, 8);
  // The first snapshot is the lineage of the second (referenced): no room.
  EXPECT_FALSE(cache.insert(0, r));
  EXPECT_EQ(cache.stats().snapshots, 1);
  EXPECT_LE(cache.stats().bytes, state + 4 * cell);
  cache.unref(r);
}

TEST(ChatPrompt, UsesTheModelTemplateAndOneBos) {
  auto m = Model::load(bundled_model());
  ASSERT_TRUE(m.ok()) << m.error();
  const Model& model = **m;
  std::vector<server::ChatMessage> msgs;
  for (auto [role, content] : {std::pair{"system", "You tell stories."}, std::pair{"user", "Tell me about a cat."},
                               std::pair{"assistant", "The cat sat."}, std::pair{"user", "And then?"}}) {
    server::ChatMessage x;
    x.role = role;
    x.content = content;
    msgs.push_back(x);
  }
  const auto p = server::build_chat_prompt(model, msgs, true);
  std::vector<ChatTurn> turns;
  for (const auto& x : msgs) turns.push_back({x.role, x.content});
  const std::string text = model.format_chat(turns, true);
  EXPECT_EQ(p.text, text);
  EXPECT_EQ(p.tokens, model.tokenize(text, true, true));
  ASSERT_FALSE(p.tokens.empty());
  EXPECT_EQ(std::count(p.tokens.begin(), p.tokens.end(), model.bos()), model.add_bos() ? 1 : 0);
  // A text that already starts with the BOS text gets no second one.
  const std::string bos_text = model.token_to_piece(model.bos(), true);
  const auto t2 = server::tokenize_chat_text(model, bos_text + text);
  EXPECT_EQ(std::count(t2.begin(), t2.end(), model.bos()), 1);
  // Boundaries: one per message, each a strict prefix end of the prompt, and
  // each the tokens of the conversation up to that message.
  ASSERT_EQ(p.boundaries.size(), msgs.size());
  for (size_t k = 0; k < msgs.size(); ++k) {
    std::vector<ChatTurn> head(turns.begin(), turns.begin() + static_cast<std::ptrdiff_t>(k + 1));
    const auto part = model.tokenize(model.format_chat(head, false), true, true);
    EXPECT_LE(p.boundaries[k], static_cast<int>(part.size()));
    EXPECT_GE(p.boundaries[k], static_cast<int>(part.size()) - 1) << "message " << k;
    EXPECT_TRUE(std::equal(part.begin(), part.begin() + p.boundaries[k], p.tokens.begin()));
  }
}

}  // namespace
}  // namespace tandem
