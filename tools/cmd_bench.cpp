// `tandem bench -m MODEL [-p 512] [-n 128] [-t 2] [-r 5] [--parallel 1,4,8] [--ctx N] [--ubatch N]
//               [--kv-type f16|f32] [--state-type f32|bf16] [--json] [--profile]`
// Prompt-processing and generation throughput, like the reference engine's
// llama-bench. Tests (each from empty memory, one untimed warm-up and -r timed
// repetitions, a fresh memory for every repetition):
//   ppP        P fixed pseudo-random tokens in one decode call;
//   tgN        N tokens decoded one per call;
//   tgN xK     K sequences, one token each per step in one batch, N steps
//              (aggregate tokens/s over the K sequences).
// -p, -n, -t and --parallel take comma lists. Prints a table (median ± stddev
// and min-max of tokens/s), peak RSS, the attention + recurrent memory of each
// test's context and the weight bytes; --json prints one JSON document with
// every repetition's time instead. --profile adds a per-op-kind breakdown
// (src/core/profiler.h) per test. --draft-model M / --lookup N [--draft-max K]
// add, per -n, "tgN greedy" and "tgN spec" (bench_speculative.h): greedy text
// after --spec-prompt without and with speculative decoding, then acceptance
// and speed-up lines.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_profile.h"
#include "bench_speculative.h"
#include "bench_tests.h"
#include "cli_common.h"
#include "command.h"
#include "format_bytes.h"
#include "run_speculative.h"
#include "core/profiler.h"
#include "tandem/tandem.h"

namespace cmd_bench {

using tandem::tools::fail;
using tandem::tools::WeightLoadFlags;
using tandem::tools::add_weight_load_flags;
using tandem::tools::format_mib;
using tandem::tools::human_count;
using tandem::tools::to_mib;
using tandem::tools::bench::BenchTest;
using Json = nlohmann::ordered_json;
constexpr const char* kCmd = "tandem bench";

struct Args {
  std::string model;
  WeightLoadFlags weights;
  std::vector<int> n_prompt{512}, n_gen{128}, threads{2}, parallel{1};
  int reps = 5, ctx = 0, ubatch = 512;
  std::string kv = "f16", state = "f32";
  bool json = false, profile = false;
  tandem::tools::SpecArgs spec;  // --draft-model / --lookup: tgN greedy + tgN spec tests
  std::string spec_prompt = "Once upon a time";
};

struct Stats {
  double median = 0, min = 0, max = 0, mean = 0, stddev = 0;
};

Stats stats_of(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  s.min = v.front();
  s.max = v.back();
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(n);
  if (n > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(ss / static_cast<double>(n - 1));
  }
  return s;
}

// Peak resident set size (VmHWM) of this process in bytes; 0 if unknown.
size_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return static_cast<size_t>(std::stoull(line.substr(6))) * 1024;
  return 0;
}

struct Result {
  std::string test, kind;
  int n_prompt = 0, n_gen = 0, n_parallel = 1, threads = 0, n_ctx = 0, tokens = 0;
  std::vector<double> seconds;  // per timed repetition
  Stats tps;
  size_t memory_bytes = 0;
  std::string extra;  // BenchTest::extra() after the last repetition
  tandem::tools::bench::ProfileReport profile;
};

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

// Runs one test: context, warm-up, timed repetitions.
tandem::Expected<Result> run_test(const tandem::Model& m, BenchTest& t, int threads, const Args& a) {
  tandem::ContextOptions co;
  co.n_ctx = a.ctx > 0 ? a.ctx : std::max(1, t.n_ctx_needed());
  if (co.n_ctx < t.n_ctx_needed())
    return tandem::Outcome(tandem::Errc::kInvalidArgument,
                           fmt::format("test {} needs {} context cells but --ctx is {}", t.name(), t.n_ctx_needed(),
                                       co.n_ctx));
  co.n_seq_max = t.n_seq();
  co.snapshot_slots = t.snapshot_slots();
  co.n_ubatch = a.ubatch;
  co.n_threads = threads;
  co.kv_type = a.kv == "f32" ? tandem::KvType::kF32 : tandem::KvType::kF16;
  co.state_type = a.state == "bf16" ? tandem::StateType::kBF16 : tandem::StateType::kF32;
  auto ctx_r = tandem::Context::create(m, co);
  if (!ctx_r) return ctx_r.outcome();
  tandem::Context& ctx = **ctx_r;

  Result r;
  r.test = t.name();
  r.kind = t.kind();
  r.n_prompt = t.n_prompt();
  r.n_gen = t.n_gen();
  r.n_parallel = t.n_parallel();
  r.threads = threads;
  r.n_ctx = co.n_ctx;
  r.tokens = t.tokens_per_rep();
  r.memory_bytes = ctx.memory_bytes();

  ctx.clear();
  if (auto st = t.run_once(ctx); !st) return tandem::Outcome(st.code(), t.name() + " warm-up: " + st.message());
  if (a.profile) {
    tandem::prof::reset();
    tandem::prof::set_enabled(true);
  }
  for (int rep = 0; rep < a.reps; ++rep) {
    ctx.clear();
    const auto t0 = std::chrono::steady_clock::now();
    tandem::Outcome st = t.run_once(ctx);
    const double s = tandem::tools::seconds_since(t0);
    if (!st) {
      tandem::prof::set_enabled(false);
      return tandem::Outcome(st.code(), fmt::format("{} repetition {}: {}", t.name(), rep + 1, st.message()));
    }
    r.seconds.push_back(s);
  }
  if (a.profile) {
    tandem::prof::set_enabled(false);
    double total = 0;
    for (double s : r.seconds) total += s;
    r.profile = tandem::tools::bench::make_profile(tandem::prof::snapshot(), total,
                                                   static_cast<int64_t>(r.tokens) * a.reps);
  }
  std::vector<double> tps;
  for (double s : r.seconds) tps.push_back(s > 0 ? r.tokens / s : 0.0);
  r.tps = stats_of(tps);
  r.extra = t.extra();
  return r;
}

int run(const Args& a) {
  tandem::ModelOptions mo;
  mo.weights = a.weights.value();
  auto model = tandem::Model::load(a.model, mo);
  if (!model) return fail(kCmd, model.error());
  const tandem::Model& m = **model;

  // The test list: every pp, every tg, then tg x K for each K > 1.
  std::vector<std::unique_ptr<BenchTest>> tests;
  for (int p : a.n_prompt)
    if (p > 0) tests.push_back(tandem::tools::bench::make_prompt_test(p, m.n_vocab()));
  for (int n : a.n_gen)
    if (n > 0) tests.push_back(tandem::tools::bench::make_gen_test(n, m.n_vocab()));
  for (int k : a.parallel)
    if (k > 1)
      for (int n : a.n_gen)
        if (n > 0) tests.push_back(tandem::tools::bench::make_parallel_gen_test(n, k, m.n_vocab()));
  // Speculative decoding: for each -n, greedy generation after a text prompt
  // without and with the drafter (the same tokens; speed-up = ratio of t/s).
  std::unique_ptr<tandem::Model> draft_model;
  std::unique_ptr<tandem::runtime::Drafter> drafter;
  if (a.spec.requested()) {
    std::vector<int32_t> prompt = m.tokenize(a.spec_prompt, true, false);
    if (prompt.empty()) return fail(kCmd, "--spec-prompt gives no tokens");
    int n_max = 0;
    for (int n : a.n_gen) n_max = std::max(n_max, n);
    auto d = tandem::tools::make_drafter(a.spec, m, static_cast<int>(prompt.size()) + n_max + a.spec.draft_max + 2,
                                         a.threads.front(), draft_model);
    if (!d) return fail(kCmd, d.error());
    drafter = std::move(d).value();
    for (int n : a.n_gen) {
      if (n <= 0) continue;
      auto sh = std::make_shared<tandem::tools::bench::SpecBenchShared>();
      tests.push_back(tandem::tools::bench::make_greedy_gen_test(n, prompt, sh));
      tests.push_back(tandem::tools::bench::make_spec_gen_test(n, prompt, drafter.get(), a.spec.draft_max, sh));
    }
  }
  if (tests.empty()) return fail(kCmd, "nothing to run: every -p and -n value is 0");
  for (const auto& t : tests)
    if (a.ctx > 0 && a.ctx < t->n_ctx_needed())
      return fail(kCmd, fmt::format("test {} needs {} context cells but --ctx is {}", t->name(), t->n_ctx_needed(),
                                    a.ctx));

  const std::string types = join(m.tensor_types(), ",");
  const uint64_t weight_bytes = m.size_bytes();
  const uint64_t repacked_bytes = 0;  // the model keeps no repacked weight copy (weights are used from the mmap)

  // Table header first so a long run shows progress row by row.
  const auto row = [](const std::string& model, const std::string& size, const std::string& params,
                      const std::string& type, const std::string& th, const std::string& test,
                      const std::string& tps, const std::string& range, const std::string& mem) {
    return fmt::format("| {:<24} | {:>10} | {:>10} | {:<16} | {:>7} | {:>12} | {:>20} | {:>21} | {:>12} |", model,
                       size, params, type, th, test, tps, range, mem);
  };
  if (!a.json) {
    std::printf("%s\n", row("model", "size", "params", "type", "threads", "test", "t/s (median ± sd)",
                            "t/s min - max", "kv+state MiB")
                            .c_str());
    std::printf("%s\n", row(std::string(24, '-'), std::string(10, '-'), std::string(10, '-'), std::string(16, '-'),
                            std::string(7, '-'), std::string(12, '-'), std::string(20, '-'), std::string(21, '-'),
                            std::string(12, '-'))
                            .c_str());
    std::fflush(stdout);
  }
  std::vector<Result> results;
  for (int th : a.threads) {
    for (auto& t : tests) {
      auto r = run_test(m, *t, th, a);
      if (!r) return fail(kCmd, r.error());
      if (!a.json) {
        std::printf("%s\n", row(m.name().substr(0, 24), format_mib(m.size_bytes()),
                                human_count(m.n_params(), " "), types.substr(0, 16), std::to_string(th), r->test,
                                fmt::format("{:.2f} ± {:.2f}", r->tps.median, r->tps.stddev),
                                fmt::format("{:.2f} - {:.2f}", r->tps.min, r->tps.max),
                                fmt::format("{:.2f}", to_mib(r->memory_bytes)))
                                .c_str());
        std::fflush(stdout);
      }
      results.push_back(std::move(*r));
    }
  }
  const size_t rss = peak_rss_bytes();

  if (a.json) {
    Json j;
    j["model"] = {{"path", m.path()},         {"name", m.name()},
                  {"arch", m.arch()},         {"kind", tandem::model_kind_name(m.kind())},
                  {"n_params", m.n_params()}, {"size_bytes", m.size_bytes()},
                  {"types", m.tensor_types()}};
    j["kv_type"] = a.kv;
    j["state_type"] = a.state;
    j["n_ubatch"] = a.ubatch;
    j["repetitions"] = a.reps;
    j["weight_bytes"] = weight_bytes;
    j["repacked_bytes"] = repacked_bytes;
    Json arr = Json::array();
    for (const auto& r : results) {
      Json e;
      e["test"] = r.test;
      e["kind"] = r.kind;
      e["n_prompt"] = r.n_prompt;
      e["n_gen"] = r.n_gen;
      e["n_parallel"] = r.n_parallel;
      e["threads"] = r.threads;
      e["n_ctx"] = r.n_ctx;
      e["tokens_per_rep"] = r.tokens;
      e["rep_seconds"] = r.seconds;
      e["tps_median"] = r.tps.median;
      e["tps_mean"] = r.tps.mean;
      e["tps_stddev"] = r.tps.stddev;
      e["tps_min"] = r.tps.min;
      e["tps_max"] = r.tps.max;
      e["memory_bytes"] = r.memory_bytes;
      if (!r.extra.empty()) e["extra"] = r.extra;
      if (a.profile) e["profile"] = tandem::tools::bench::profile_json(r.profile);
      arr.push_back(std::move(e));
    }
    j["results"] = std::move(arr);
    j["peak_rss_bytes"] = rss;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("\npeak RSS: %.2f MiB; weights: %.2f MiB (%s), repacked copies: %.2f MiB; kv %s, state %s\n",
              to_mib(rss), to_mib(weight_bytes), m.weights_in_memory() ? "read into memory, huge pages advised" : "mmap",
              to_mib(repacked_bytes),
              a.kv.c_str(), a.state.c_str());
  // Speculative rows: acceptance, and speed-up over the greedy row just before.
  for (size_t i = 1; i < results.size(); ++i)
    if (results[i].kind == "tg_spec" && results[i - 1].kind == "tg_greedy")
      std::printf("%s (threads %d): %s; speed-up %.2fx over %s\n", results[i].test.c_str(), results[i].threads,
                  results[i].extra.c_str(),
                  results[i - 1].tps.median > 0 ? results[i].tps.median / results[i - 1].tps.median : 0.0,
                  results[i - 1].test.c_str());
  if (a.profile)
    for (const auto& r : results) {
      std::printf("\nprofile %s (threads %d):\n", r.test.c_str(), r.threads);
      tandem::tools::bench::print_profile(r.profile);
    }
  return 0;
}

int run_cmd(int argc, char** argv) {
  CLI::App app{"Prompt and generation throughput (like llama-bench)", kCmd};
  Args a;
  app.add_option("-m,--model", a.model, "GGUF model")->required();
  add_weight_load_flags(app, a.weights);
  app.add_option("-p,--n-prompt", a.n_prompt, "prompt tokens per pp test (comma list; 0 = no pp test)")
      ->delimiter(',')
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("-n,--n-gen", a.n_gen, "generated tokens per tg test (comma list; 0 = no tg test)")
      ->delimiter(',')
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("-t,--threads", a.threads, "worker threads (comma list)")
      ->delimiter(',')
      ->check(CLI::Range(1, 1024));
  app.add_option("-r,--repetitions", a.reps, "timed repetitions per test")->check(CLI::Range(1, 10000));
  app.add_option("--parallel", a.parallel, "sequences decoding together in tg tests (comma list)")
      ->delimiter(',')
      ->check(CLI::Range(1, 256));
  app.add_option("--ctx", a.ctx, "context cells (default: what each test needs)")->check(CLI::Range(1, 1 << 24));
  app.add_option("--ubatch", a.ubatch, "tokens per micro-batch")->check(CLI::Range(1, 1 << 16));
  app.add_option("--kv-type", a.kv, "KV cache type")->check(CLI::IsMember({"f16", "f32"}));
  app.add_option("--state-type", a.state, "recurrent state type")->check(CLI::IsMember({"f32", "bf16"}));
  tandem::tools::add_spec_options(app, a.spec);
  app.add_option("--spec-prompt", a.spec_prompt, "text prompt of the speculative tests");
  app.add_flag("--json", a.json, "print one JSON document with every repetition's time");
  app.add_flag("--profile", a.profile, "time per op kind (matmul by layer part, scans, attention, ...)");
  if (auto rc = tandem::tools::parse_args(app, argc, argv)) return *rc;
  return run(a);
}

tandem::tools::CommandRegistration reg("bench", "prompt / generation throughput, like llama-bench", run_cmd);

}  // namespace cmd_bench
