// `tandem bench`, `tandem perplexity` and `tandem inspect --memory` as a user
// runs them. Independent truths: the perplexity recomputed here through the
// public API (Context + log-softmax), the memory of a real Context with the
// same options, the raw repetition times of bench's own JSON against its
// summary figures, and the profiler seeing the kernels each model must run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "tandem/tandem.h"

namespace {

using namespace tandem::clitest;  // Out, tandem_cli, q, threads, expect_one_error_line, fs, kFix
const fs::path kHybrid = kFix / "models" / "tiny-hybrid-stories.gguf";
const fs::path kStories = kFix / "models" / "stories260K.gguf";

// ------------------------------------------------------------------ bench

TEST(CliBench, JsonParsesAndFiguresFollowFromRepTimes) {
  ASSERT_TRUE(fs::exists(kHybrid)) << kHybrid;
  Out o = tandem_cli("bench -m " + q(kHybrid) + " -p 16 -n 8 -r 2 --parallel 1,2 --json -t " + threads());
  ASSERT_EQ(o.code, 0) << o.err;
  const auto j = nlohmann::json::parse(o.out);
  const auto& res = j.at("results");
  ASSERT_EQ(res.size(), 3u) << o.out;
  const std::vector<std::string> names{"pp16", "tg8", "tg8 x2"};
  const std::vector<int> tokens{16, 8, 16}, seqs{1, 1, 2}, cells{16, 8, 16};
  auto m = tandem::Model::load(kHybrid.string());
  ASSERT_TRUE(m.ok()) << m.error();
  for (size_t i = 0; i < res.size(); ++i) {
    const auto& r = res[i];
    EXPECT_EQ(r.at("test").get<std::string>(), names[i]);
    EXPECT_EQ(r.at("tokens_per_rep").get<int>(), tokens[i]);
    const auto secs = r.at("rep_seconds").get<std::vector<double>>();
    ASSERT_EQ(secs.size(), 2u);
    // Summary = tokens / rep time: min from the slowest rep, max from the fastest,
    // median of two reps = their mean.
    const double t0 = tokens[i] / secs[0], t1 = tokens[i] / secs[1];
    EXPECT_NEAR(r.at("tps_min").get<double>(), std::min(t0, t1), 1e-6 * std::max(t0, t1));
    EXPECT_NEAR(r.at("tps_max").get<double>(), std::max(t0, t1), 1e-6 * std::max(t0, t1));
    EXPECT_NEAR(r.at("tps_median").get<double>(), 0.5 * (t0 + t1), 1e-6 * std::max(t0, t1));
    // The context's memory = what a Context with the test's options holds.
    tandem::ContextOptions co;
    co.n_ctx = cells[i];
    co.n_seq_max = seqs[i];
    co.n_threads = 1;
    auto ctx = tandem::Context::create(**m, co);
    ASSERT_TRUE(ctx.ok()) << ctx.error();
    EXPECT_EQ(r.at("memory_bytes").get<size_t>(), (*ctx)->memory_bytes()) << names[i];
  }
  EXPECT_EQ(j.at("weight_bytes").get<uint64_t>(), (*m)->size_bytes());
  EXPECT_GT(j.at("peak_rss_bytes").get<uint64_t>(), (*m)->size_bytes());
}

TEST(CliBench, TableNamesEveryTest) {
  Out o = tandem_cli("bench -m " + q(kStories) + " -p 16 -n 8 -r 2 --parallel 2 --mmap -t " + threads());
  ASSERT_EQ(o.code, 0) << o.err;
  for (const char* want : {" pp16 |", " tg8 |", " tg8 x2 |", "peak RSS", "t/s", "(mmap)"})
    EXPECT_NE(o.out.find(want), std::string::npos) << want << "\n" << o.out;
  // --no-mmap, and the default for a file far smaller than the free memory:
  // the same tests, the weights said to be read into memory
  for (const char* flag : {" --no-mmap", ""}) {
    Out r = tandem_cli("bench -m " + q(kStories) + " -p 16 -n 8 -r 1" + flag + " -t " + threads());
    ASSERT_EQ(r.code, 0) << r.err;
    for (const char* want : {" pp16 |", " tg8 |", "read into memory, huge pages advised"})
      EXPECT_NE(r.out.find(want), std::string::npos) << want << flag << "\n" << r.out;
  }
  // the two flags together are refused before anything is loaded
  Out both = tandem_cli("bench -m " + q(kStories) + " --mmap --no-mmap");
  EXPECT_EQ(both.code, 2);
  EXPECT_NE(both.err.find("excludes"), std::string::npos) << both.err;
}

// --profile: the hybrid model runs attention and Mamba2 layers, so matmuls must
// be attributed to the attention, recurrent, ffn and lm_head parts, and scan,
// conv and attention-core time must be non-zero; the rows sum to the wall time.
TEST(CliBench, ProfileSeesEveryLayerPart) {
  Out o = tandem_cli("bench -m " + q(kHybrid) + " -p 16 -n 4 -r 2 --profile --json -t " + threads());
  ASSERT_EQ(o.code, 0) << o.err;
  const auto j = nlohmann::json::parse(o.out);
  for (const auto& r : j.at("results")) {
    const auto& p = r.at("profile");
    double sum = 0;
    std::vector<std::string> seen;
    for (const auto& op : p.at("ops")) {
      sum += op.at("ns").get<double>();
      if (op.at("calls").get<uint64_t>() > 0) seen.push_back(op.at("op").get<std::string>());
    }
    double rep_total = 0;
    for (double s : r.at("rep_seconds")) rep_total += s;
    EXPECT_NEAR(p.at("total_ns").get<double>(), rep_total * 1e9, 1e3);
    EXPECT_NEAR(sum, p.at("total_ns").get<double>(), 1e-6 * sum + 1e3);
    for (const char* want : {"matmul attention", "matmul recurrent", "matmul ffn", "matmul lm_head", "ssm scan",
                             "conv", "attention core", "norms"})
      EXPECT_NE(std::find(seen.begin(), seen.end(), want), seen.end()) << r.at("test") << " lacks " << want;
    if (r.at("kind") == "tg") {
      EXPECT_NE(std::find(seen.begin(), seen.end(), "sampling"), seen.end());
    }
  }
}

TEST(CliBench, BadArgumentsGiveOneErrorLine) {
  const std::string m = " -m " + q(kStories);
  for (const std::string& args :
       {std::string("bench"), "bench" + m + " -r 0", "bench" + m + " -p abc", "bench" + m + " --parallel 0",
        "bench" + m + " -t 0", "bench" + m + " --kv-type q4", "bench" + m + " -p 0 -n 0",
        "bench" + m + " -p 64 --ctx 8", std::string("bench -m /nonexistent/model.gguf"), "bench" + m + " --bogus"})
    expect_one_error_line(tandem_cli(args), args);
}

// ------------------------------------------------------------------ perplexity

const char* kStory =
    "Once upon a time, there was a little girl named Lily. She loved to play in the park with her red ball. "
    "One day, she saw a big dog near the tree. The dog was sad because it had lost its bone. Lily wanted to help. "
    "She looked under the bench and behind the slide. At last she found the bone in the sand. The dog was so "
    "happy that it wagged its tail and licked her hand. Lily smiled and said, \"You are my friend now.\" "
    "From that day on, Lily and the dog played together in the park every day. They ran, they jumped and they "
    "laughed. When the sun went down, Lily went home to her mom and told her all about the happy dog. Her mom "
    "gave her a big hug and a warm cup of milk. Then Lily went to bed and dreamed of the park, the ball and "
    "her new friend.\n";

fs::path write_text(const std::string& name, const std::string& text) {
  const fs::path p = fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()) + ".txt");
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

// The reference engine's scheme written out here: chunks of ctx tokens from
// empty memory (first token -> BOS), NLL of token j+1 for j in [ctx/2, ctx-1).
double perplexity_by_hand(const tandem::Model& m, const std::string& text, int n_ctx, double* mean_nll) {
  const std::vector<int32_t> toks = m.tokenize(text, true, false);
  tandem::ContextOptions co;
  co.n_ctx = n_ctx;
  co.n_threads = 2;
  auto ctx = tandem::Context::create(m, co);
  EXPECT_TRUE(ctx.ok()) << ctx.error();
  double nll = 0;
  int64_t count = 0;
  for (size_t start = 0; start + n_ctx <= toks.size(); start += n_ctx) {
    (*ctx)->clear();
    tandem::Batch b;
    for (int j = 0; j < n_ctx; ++j) b.add(j == 0 && m.add_bos() ? m.bos() : toks[start + j], j, {0}, true);
    EXPECT_TRUE((*ctx)->decode(b).ok());
    for (int j = n_ctx / 2; j < n_ctx - 1; ++j) {
      const float* lg = (*ctx)->logits(j);
      double z = 0;
      for (int v = 0; v < m.n_vocab(); ++v) z += std::exp(static_cast<double>(lg[v]));
      nll += std::log(z) - lg[toks[start + j + 1]];
      ++count;
    }
  }
  *mean_nll = nll / static_cast<double>(count);
  return std::exp(*mean_nll);
}

// The first "PPL = <x> +/- <y>" in the output (-1 if none). Plain scanning, not
// <regex>: one std::regex costs ~10 s of sanitizer-build compile time.
double printed_ppl(const std::string& out) {
  for (size_t at = out.find("PPL = "); at != std::string::npos; at = out.find("PPL = ", at + 1)) {
    double ppl = 0, err = 0;
    if (std::sscanf(out.c_str() + at, "PPL = %lf +/- %lf", &ppl, &err) == 2) return ppl;
  }
  return -1;
}

TEST(CliPerplexity, MatchesHandComputedNll) {
  auto m = tandem::Model::load(kStories.string());
  ASSERT_TRUE(m.ok()) << m.error();
  const std::string text = std::string(kStory) + kStory;
  const int n_ctx = 64;
  ASSERT_GE((*m)->tokenize(text).size(), 3u * n_ctx);  // three chunks
  double mean = 0;
  const double want = perplexity_by_hand(**m, text, n_ctx, &mean);
  ASSERT_TRUE(std::isfinite(want) && want > 1.0) << want;
  const fs::path f = write_text("tandem_ppl", text);
  Out o = tandem_cli("perplexity -m " + q(kStories) + " -f " + q(f) + " --ctx 64 -t " + threads());
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NEAR(printed_ppl(o.out), want, 1e-4 * want + 1e-4) << o.out;
  EXPECT_NE(o.out.find("[3]"), std::string::npos) << o.out;  // progress per chunk
  // Splitting each chunk over several decode calls scores the same tokens.
  Out b = tandem_cli("perplexity -m " + q(kStories) + " -f " + q(f) + " --ctx 64 -b 16 -t " + threads());
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_NEAR(printed_ppl(b.out), want, 1e-4 * want + 1e-4) << b.out;
  fs::remove(f);
}

TEST(CliPerplexity, ShortFileAndBadArgumentsGiveOneErrorLine) {
  const fs::path f = write_text("tandem_ppl_short", "Once upon a time there was a cat.");
  const std::string m = " -m " + q(kStories);
  for (const std::string& args :
       {"perplexity" + m + " -f " + q(f) + " --ctx 64", "perplexity" + m, "perplexity -f " + q(f),
        "perplexity" + m + " -f /nonexistent/text.txt", "perplexity" + m + " -f " + q(f) + " --ctx 2",
        "perplexity" + m + " -f " + q(f) + " -b 0"}) {
    Out o = tandem_cli(args);
    expect_one_error_line(o, args);
  }
  Out o = tandem_cli("perplexity" + m + " -f " + q(f) + " --ctx 64");
  EXPECT_NE(o.err.find("needs at least 128"), std::string::npos) << o.err;
  fs::remove(f);
}

// ------------------------------------------------------------------ inspect --memory

size_t context_bytes(const tandem::Model& m, int n_ctx, int n_seq, tandem::KvType kv,
                     tandem::StateType state = tandem::StateType::kF32, int snapshots = 0) {
  tandem::ContextOptions co;
  co.state_type = state;
  co.snapshot_slots = snapshots;
  co.n_ctx = n_ctx;
  co.n_seq_max = n_seq;
  co.kv_type = kv;
  co.n_threads = 1;
  auto ctx = tandem::Context::create(m, co);
  EXPECT_TRUE(ctx.ok()) << ctx.error();
  return ctx.ok() ? (*ctx)->memory_bytes() : 0;
}

TEST(CliInspectMemory, EqualsARealContext) {
  for (const fs::path& model : {kHybrid, kStories, kFix / "models" / "tiny-mamba2.gguf"}) {
    auto m = tandem::Model::load(model.string());
    ASSERT_TRUE(m.ok()) << m.error();
    for (const auto& [n_ctx, n_seq, kv] : std::vector<std::tuple<int, int, std::string>>{
             {256, 1, "f16"}, {512, 3, "f16"}, {128, 4, "f32"}}) {
      Out o = tandem_cli("inspect " + q(model) + " --memory --json --ctx " + std::to_string(n_ctx) + " --parallel " +
                         std::to_string(n_seq) + " --kv-type " + kv);
      ASSERT_EQ(o.code, 0) << o.err;
      const auto j = nlohmann::json::parse(o.out);
      const size_t want = context_bytes(**m, n_ctx, n_seq, kv == "f32" ? tandem::KvType::kF32 : tandem::KvType::kF16);
      EXPECT_EQ(j.at("total_bytes").get<size_t>(), want) << model << " ctx " << n_ctx << " seq " << n_seq << " " << kv;
      // Attention grows with the context, recurrent state with the sequences only.
      EXPECT_EQ(j.at("attention_bytes").get<size_t>(), j.at("attention_bytes_per_token").get<size_t>() * n_ctx);
      EXPECT_EQ(j.at("recurrent_bytes").get<size_t>(), j.at("recurrent_bytes_per_sequence").get<size_t>() * n_seq);
    }
  }
}

// BF16 recurrent state and a snapshot pool: still what a real Context holds.
TEST(CliInspectMemory, StateTypeAndSnapshotsEqualARealContext) {
  auto m = tandem::Model::load(kHybrid.string());
  ASSERT_TRUE(m.ok()) << m.error();
  for (const std::string st : {"f32", "bf16"}) {
    Out o = tandem_cli("inspect " + q(kHybrid) + " --memory --json --ctx 256 --parallel 2 --snapshot-slots 3 --state-type " + st);
    ASSERT_EQ(o.code, 0) << o.err;
    const auto j = nlohmann::json::parse(o.out);
    const auto type = st == "bf16" ? tandem::StateType::kBF16 : tandem::StateType::kF32;
    EXPECT_EQ(j.at("total_bytes").get<size_t>(), context_bytes(**m, 256, 2, tandem::KvType::kF16, type, 3)) << st;
    EXPECT_GT(j.at("snapshot_bytes").get<size_t>(), 0u);
  }
}

TEST(CliInspectMemory, AttentionGrowsWithContextRecurrentDoesNot) {
  auto bytes = [](int n_ctx, int n_seq) {
    Out o = tandem_cli("inspect " + q(kHybrid) + " --memory --json --ctx " + std::to_string(n_ctx) + " --parallel " +
                       std::to_string(n_seq));
    EXPECT_EQ(o.code, 0) << o.err;
    return nlohmann::json::parse(o.out);
  };
  const auto a = bytes(256, 2), b = bytes(1024, 2), c = bytes(256, 5);
  EXPECT_GT(a.at("attention_bytes").get<size_t>(), 0u);
  EXPECT_GT(a.at("recurrent_bytes").get<size_t>(), 0u);
  EXPECT_EQ(b.at("attention_bytes").get<size_t>(), 4 * a.at("attention_bytes").get<size_t>());
  EXPECT_EQ(b.at("recurrent_bytes").get<size_t>(), a.at("recurrent_bytes").get<size_t>());
  EXPECT_EQ(c.at("attention_bytes").get<size_t>(), a.at("attention_bytes").get<size_t>());
  EXPECT_EQ(c.at("recurrent_bytes_per_sequence").get<size_t>(), a.at("recurrent_bytes_per_sequence").get<size_t>());
  Out text = tandem_cli("inspect " + q(kHybrid) + " --memory --ctx 256 --parallel 2");
  ASSERT_EQ(text.code, 0) << text.err;
  for (const char* want : {"attention store", "recurrent state", "per sequence", "total"})
    EXPECT_NE(text.out.find(want), std::string::npos) << text.out;
}

}  // namespace
