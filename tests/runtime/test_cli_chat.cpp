// `tandem chat` driven through a pipe: each turn must process only the tokens
// the context does not already hold, for a hybrid (attention + Mamba2) model
// and a llama model; /save, /reset, /load then a turn behaves as if the
// conversation had never been reset.
//
// Independent truth: the conversation is replayed here through the public API
// without any reuse — each turn's rendered conversation (Model::format_chat +
// tokenize) is decoded from empty memory and the reply generated greedily —
// which gives the reply text and the tokens the context holds after each
// turn; the tokens a turn must process are the rendered conversation minus
// its longest common prefix with what the context holds.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cli_test_util.h"
#include "tandem/tandem.h"

namespace {

using namespace tandem::clitest;  // Out, tandem_cli, q, threads, expect_one_error_line, fs, kFix
constexpr int kReply = 12;  // -n: tokens per reply
constexpr int kCtx = 512;

struct TurnTruth {
  std::string reply;  // text printed for the turn (without the final newline)
  size_t reused = 0, processed = 0;
};

int32_t argmax(const float* x, int n) {
  int32_t b = 0;
  for (int32_t i = 1; i < n; ++i)
    if (x[i] > x[b]) b = i;
  return b;
}

// The expected course of a conversation of `users` messages.
std::vector<TurnTruth> simulate(const tandem::Model& m, const std::vector<std::string>& users) {
  std::vector<TurnTruth> out;
  std::vector<tandem::ChatTurn> turns;
  std::vector<int32_t> held;  // what the chat's context holds after each turn
  for (const auto& u : users) {
    turns.push_back({"user", u});
    std::vector<int32_t> toks = m.tokenize(m.format_chat(turns, true), true, true);
    if (toks.size() >= 2 && toks[0] == m.bos() && toks[1] == m.bos()) toks.erase(toks.begin());
    size_t keep = 0;
    while (keep < held.size() && keep < toks.size() && held[keep] == toks[keep]) ++keep;
    if (keep == toks.size()) --keep;
    TurnTruth t;
    t.reused = keep;
    t.processed = toks.size() - keep;
    // The reply, from empty memory (no reuse at all).
    tandem::ContextOptions co;
    co.n_ctx = kCtx;
    co.n_threads = 2;
    auto ctx = tandem::Context::create(m, co);
    EXPECT_TRUE(ctx.ok()) << ctx.error();
    tandem::Batch b;
    for (size_t i = 0; i < toks.size(); ++i) b.add(toks[i], static_cast<int>(i), {0}, i + 1 == toks.size());
    EXPECT_TRUE((*ctx)->decode(b).ok());
    tandem::TextStream stream(m);
    held = toks;
    for (int i = 0; i < kReply; ++i) {
      const int32_t tok = argmax((*ctx)->logits(0), m.n_vocab());
      if (m.is_eog(tok)) break;
      t.reply += stream.push(tok);
      held.push_back(tok);
      b.clear();
      b.add(tok, static_cast<int>(held.size()) - 1, {0}, true);
      EXPECT_TRUE((*ctx)->decode(b).ok());
    }
    t.reply += stream.flush();
    turns.push_back({"assistant", t.reply});
    out.push_back(t);
  }
  return out;
}

struct TurnStat {
  size_t reused, processed;
};

std::vector<TurnStat> parse_stats(const std::string& err) {
  std::vector<TurnStat> v;
  // Plain scanning, not <regex>: one std::regex costs ~10 s of sanitizer-build compile time.
  const std::string key = "[reused ";
  for (size_t at = err.find(key); at != std::string::npos; at = err.find(key, at + 1)) {
    size_t reused = 0, processed = 0;
    if (std::sscanf(err.c_str() + at, "[reused %zu tokens, processed %zu new", &reused, &processed) == 2)
      v.push_back({reused, processed});
  }
  return v;
}

Out chat(const fs::path& model, const std::string& input) {
  return tandem_cli("chat -m " + q(model) + " --temp 0 -n " + std::to_string(kReply) + " --ctx " +
                        std::to_string(kCtx) + " -t " + threads(),
                    &input);
}

void check_model(const fs::path& model) {
  SCOPED_TRACE(model.string());
  ASSERT_TRUE(fs::exists(model)) << model;
  auto m = tandem::Model::load(model.string());
  ASSERT_TRUE(m.ok()) << m.error();
  const std::vector<std::string> users{"Tell me a story about a cat.", "What did the cat eat?"};
  const auto want = simulate(**m, users);

  // Two turns in one session.
  Out a = chat(model, users[0] + "\n" + users[1] + "\n");
  ASSERT_EQ(a.code, 0) << a.err;
  const auto st = parse_stats(a.err);
  ASSERT_EQ(st.size(), 2u) << a.err;
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(st[i].reused, want[i].reused) << "turn " << i + 1 << "\n" << a.err;
    EXPECT_EQ(st[i].processed, want[i].processed) << "turn " << i + 1 << "\n" << a.err;
  }
  EXPECT_EQ(st[0].reused, 0u);
  EXPECT_GT(st[1].reused, st[0].processed) << "turn 2 must reuse turn 1's prompt and reply";
  EXPECT_EQ(a.out, want[0].reply + "\n" + want[1].reply + "\n");

  // Save after turn 1, reset, load, turn 2: as if never reset.
  const fs::path f = fs::temp_directory_path() / ("tandem_chat_state_" + std::to_string(::getpid()) + ".bin");
  Out b = chat(model, users[0] + "\n/save " + f.string() + "\n/reset\n/load " + f.string() + "\n" + users[1] + "\n");
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_NE(b.err.find("[loaded"), std::string::npos) << b.err;
  const auto sb = parse_stats(b.err);
  ASSERT_EQ(sb.size(), 2u) << b.err;
  EXPECT_EQ(sb[1].reused, st[1].reused) << b.err;
  EXPECT_EQ(sb[1].processed, st[1].processed) << b.err;
  EXPECT_EQ(b.out, a.out);

  // Reset without load: turn 2 starts from nothing (the reset is real).
  Out c = chat(model, users[0] + "\n/reset\n" + users[1] + "\n");
  ASSERT_EQ(c.code, 0) << c.err;
  const auto sc = parse_stats(c.err);
  ASSERT_EQ(sc.size(), 2u) << c.err;
  EXPECT_LT(sc[1].reused, st[1].reused) << c.err;
  std::error_code ec;
  fs::remove(f, ec);
  fs::remove(f.string() + ".chat.json", ec);
}

TEST(CliChat, HybridDemoModelProcessesOnlyNewTokens) { check_model(kFix / "demo" / "tiny-hybrid-stories.gguf"); }

TEST(CliChat, LlamaModelProcessesOnlyNewTokens) { check_model(kFix / "models" / "stories260K.gguf"); }

}  // namespace
