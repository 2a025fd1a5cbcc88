// `tandem run [-m MODEL] [-p PROMPT] [-n N] [--temp T --top-k K --top-p P --min-p P --seed S]
//             [--parallel K] [-t THREADS] [--ctx N] [--llama2c] [--grammar FILE | --json-schema FILE]`
// Generates text after a prompt and streams it to stdout. By default it prints
// what the reference engine's simple generator prints: the prompt echoed token
// by token exactly as the model sees it (a SentencePiece vocabulary gives it a
// leading space), each generated token as it comes, then an empty line
// ("\n\n"). --llama2c prints what llama2.c's `run` prints instead: no leading
// space, generation also stops at BOS, one final newline, f32 KV cache. --parallel K generates K continuations of the same prompt;
// the prompt is processed once and shared by the K sequences through seq_cp.
// --draft-model M / --lookup N [--draft-max K] generate through speculative
// decoding (src/runtime/speculative.h): same text, acceptance stats on stderr.
// --grammar FILE (GBNF) / --json-schema FILE constrain the generated text
// (src/runtime/grammar/); generation stops when the grammar is complete.
// Speeds (prompt and generation tokens/s) go to stderr. With no -m the bundled
// default model models/tiny-hybrid-stories.gguf is used.
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cli_common.h"
#include "command.h"
#include "run_speculative.h"
#include "runtime/grammar/load.h"
#include "tandem/tandem.h"

namespace cmd_run {

using tandem::tools::fail;
using tandem::tools::WeightLoadFlags;
using tandem::tools::add_weight_load_flags;
using tandem::tools::seconds_since;
constexpr const char* kCmd = "tandem run";

struct Args {
  std::string model, prompt;
  WeightLoadFlags weights;
  int n_predict = 128, parallel = 1, threads = 0, ctx = 0, ubatch = 512;
  float temp = 0.8f, top_p = 0.95f, min_p = 0.05f, typical_p = 1.0f;
  float repeat_penalty = 1.0f, freq_penalty = 0.0f, presence_penalty = 0.0f;
  int top_k = 40, repeat_last_n = 64;
  int64_t seed = -1;
  bool llama2c = false, no_echo = false, ignore_eos = false;
  std::string kv = "f16";
  std::string state_type = "f32";  // --state-type: recurrent state storage
  std::string grammar_file, schema_file;  // --grammar / --json-schema: constrained output
  tandem::tools::SpecArgs spec;  // --draft-model / --lookup (run_speculative.h)
};

void write(const std::string& s) {
  if (s.empty()) return;
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

int run(const Args& a) {
  std::string path = a.model;
  if (path.empty()) {
    path = tandem::tools::find_default_model();
    if (path.empty())
      return fail(kCmd, std::string("no -m MODEL given and the bundled default model models/") +
                            tandem::tools::kDefaultModelName + " was not found next to the executable or in ./models");
  }
  tandem::ModelOptions mo;
  mo.weights = a.weights.value();
  auto model = tandem::Model::load(path, mo);
  if (!model) return fail(kCmd, model.error());
  const tandem::Model& m = **model;

  std::vector<int32_t> prompt = m.tokenize(a.prompt, true, false);
  if (prompt.empty()) {
    if (m.bos() < 0) return fail(kCmd, "empty prompt and the vocabulary has no BOS token to start from");
    prompt.push_back(m.bos());
  }
  const int n_prompt = static_cast<int>(prompt.size());
  const int K = a.parallel;

  const bool spec = a.spec.requested();
  if (spec && K > 1) return fail(kCmd, "speculative decoding (--draft-model / --lookup) generates one sequence: drop --parallel");
  // --grammar / --json-schema: every sampler bans the tokens that cannot continue the grammar.
  std::shared_ptr<const tandem::TokenConstraint> constraint;
  if (!a.grammar_file.empty() || !a.schema_file.empty()) {
    if (spec) return fail(kCmd, "--grammar / --json-schema cannot be combined with speculative decoding");
    const bool schema = !a.schema_file.empty();
    auto c = tandem::grammar::constraint_from_file(m, schema ? a.schema_file : a.grammar_file, schema);
    if (!c.is_ok()) return fail(kCmd, c.status().message());
    constraint = *c;
  }
  tandem::ContextOptions co;
  co.n_ctx = a.ctx > 0 ? a.ctx : n_prompt + K * a.n_predict + (spec ? a.spec.draft_max + 1 : 0);
  if (spec) co.snapshot_slots = 2;  // the rollback window: one snapshot per round
  co.n_seq_max = K;
  co.n_ubatch = a.ubatch;
  co.n_threads = a.threads;
  co.kv_type = a.kv == "f32" ? tandem::KvType::kF32 : tandem::KvType::kF16;
  co.state_type = a.state_type == "bf16" ? tandem::StateType::kBF16 : tandem::StateType::kF32;
  if (n_prompt + a.n_predict > co.n_ctx)
    return fail(kCmd, "prompt (" + std::to_string(n_prompt) + " tokens) + " + std::to_string(a.n_predict) +
                          " generated tokens do not fit in --ctx " + std::to_string(co.n_ctx));
  auto ctx_r = tandem::Context::create(m, co);
  if (!ctx_r) return fail(kCmd, ctx_r.error());
  tandem::Context& ctx = **ctx_r;

  // Per continuation: its sampler (seed + k so they differ) and text stream.
  const uint32_t seed = a.seed >= 0 ? static_cast<uint32_t>(a.seed) : std::random_device{}();
  std::vector<tandem::Sampler> samplers;
  std::vector<tandem::TextStream> streams;
  std::vector<std::string> texts(K);  // --parallel > 1: printed at the end
  for (int k = 0; k < K; ++k) {
    tandem::SamplerOptions so;
    so.temperature = a.temp;
    so.top_k = a.top_k;
    so.top_p = a.top_p;
    so.min_p = a.min_p;
    so.typical_p = a.typical_p;
    so.repeat_penalty = a.repeat_penalty;
    so.frequency_penalty = a.freq_penalty;
    so.presence_penalty = a.presence_penalty;
    so.penalty_last_n = a.repeat_last_n;
    so.seed = seed + static_cast<uint32_t>(k);
    so.constraint = constraint;
    samplers.emplace_back(so);
    for (int32_t t : prompt) samplers.back().accept_prompt(t);
    streams.emplace_back(m, a.llama2c);
  }

  // Echo the prompt as the model sees it (BOS and other control tokens print nothing).
  for (int32_t t : prompt) {
    for (int k = 0; k < K; ++k) {
      std::string s = streams[k].push(t);
      if (a.no_echo) continue;
      if (K == 1) write(s);
      else texts[k] += s;
    }
  }

  if (spec) {
    // Draft, verify in one call, accept (src/runtime/speculative.h).
    std::unique_ptr<tandem::Model> draft_model;
    auto drafter = tandem::tools::make_drafter(a.spec, m, co.n_ctx, co.n_threads, draft_model);
    if (!drafter) return fail(kCmd, drafter.error());
    auto stop = [&](int32_t t) { return !a.ignore_eos && (m.is_eog(t) || (a.llama2c && t == m.bos())); };
    auto emit = [&](int32_t t) { if (!stop(t)) write(streams[0].push(t)); };
    auto r = tandem::tools::generate_speculative(ctx, drafter->get(), a.spec.draft_max, prompt, a.n_predict,
                                                 samplers[0], stop, emit);
    if (!r) return fail(kCmd, r.error());
    int n_gen = static_cast<int>(r->tokens.size());
    if (n_gen > 0 && stop(r->tokens.back())) --n_gen;
    write(streams[0].flush() + (a.llama2c ? "\n" : "\n\n"));
    std::fprintf(stderr, "\nprompt: %d tokens in %.3f s (%.1f tokens/s)\n", n_prompt, r->prompt_s,
                 r->prompt_s > 0 ? n_prompt / r->prompt_s : 0.0);
    std::fprintf(stderr, "generation: %d tokens in %.3f s (%.1f tokens/s)\n%s", n_gen, r->gen_s,
                 r->gen_s > 0 ? n_gen / r->gen_s : 0.0, tandem::tools::format_spec_stats(*r).c_str());
    return 0;
  }

  // Prompt: one decode call, logits for the last row only.
  tandem::tools::ProgressBar bar("prompt");
  ctx.set_progress_callback([&](const tandem::DecodeProgress& p) { bar.update(p.tokens_done, p.tokens_total); });
  const auto t_prompt = std::chrono::steady_clock::now();
  tandem::Batch b;
  for (int i = 0; i < n_prompt; ++i) b.add(prompt[i], i, {0}, i + 1 == n_prompt);
  if (auto st = ctx.decode(b); !st) return fail(kCmd, "prompt: " + st.message());
  const double prompt_s = seconds_since(t_prompt);
  bar.finish();
  ctx.set_progress_callback(nullptr);
  for (int k = 1; k < K; ++k)
    if (auto st = ctx.seq_cp(0, k); !st) return fail(kCmd, "seq_cp: " + st.message());

  // Generation: every live sequence samples from its logits row, then the new
  // tokens of all of them are decoded together.
  std::vector<int> row(K, 0);  // output row of each sequence in the last decode
  std::vector<bool> live(K, true);
  int n_gen = 0;
  const auto t_gen = std::chrono::steady_clock::now();
  double gen_decode_s = 0, sample_s = 0;  // sample_s: the sampler chain (grammar mask included)
  int n_decoded = 0, n_sampled = 0;
  for (int step = 0; step < a.n_predict; ++step) {
    b.clear();
    for (int k = 0; k < K; ++k) {
      if (!live[k]) continue;
      const auto t_s = std::chrono::steady_clock::now();
      const int32_t tok = samplers[k].sample(ctx.logits(row[k]), ctx.n_vocab());
      sample_s += seconds_since(t_s);
      ++n_sampled;
      if (tok < 0 || (!a.ignore_eos && (m.is_eog(tok) || (a.llama2c && tok == m.bos())))) {
        live[k] = false;
        continue;
      }
      samplers[k].accept(tok);
      ++n_gen;
      std::string s = streams[k].push(tok);
      if (K == 1) write(s);
      else texts[k] += s;
      if (step + 1 < a.n_predict) b.add(tok, n_prompt + step, {k}, true);
    }
    if (b.size() == 0) break;
    // Output rows come back in batch order.
    int r = 0;
    for (int k = 0; k < K; ++k) {
      bool in = false;
      for (const auto& ss : b.seq) in = in || ss[0] == k;
      if (in) row[k] = r++;
    }
    const auto t0 = std::chrono::steady_clock::now();
    if (auto st = ctx.decode(b); !st) return fail(kCmd, "generation: " + st.message());
    gen_decode_s += seconds_since(t0);
    n_decoded += static_cast<int>(b.size());
  }
  const double gen_s = seconds_since(t_gen);
  for (int k = 0; k < K; ++k) texts[k] += streams[k].flush();
  if (K == 1) {
    write(texts[0] + (a.llama2c ? "\n" : "\n\n"));
  } else {
    for (int k = 0; k < K; ++k) write("[" + std::to_string(k) + "] " + texts[k] + "\n");
  }
  std::fprintf(stderr, "\nprompt: %d tokens in %.3f s (%.1f tokens/s)\n", n_prompt, prompt_s,
               prompt_s > 0 ? n_prompt / prompt_s : 0.0);
  std::fprintf(stderr, "generation: %d tokens in %.3f s (%.1f tokens/s; %d decoded in %.3f s)\n", n_gen, gen_s,
               gen_s > 0 ? n_gen / gen_s : 0.0, n_decoded, gen_decode_s);
  std::fprintf(stderr, "sampling: %.3f ms/token (%d samples%s)\n", n_sampled > 0 ? 1e3 * sample_s / n_sampled : 0.0,
               n_sampled, constraint ? ", grammar-constrained" : "");
  return 0;
}

int run_cmd(int argc, char** argv) {
  CLI::App app{"Generate text after a prompt", kCmd};
  Args a;
  app.add_option("-m,--model", a.model, "GGUF model (default: the bundled models/tiny-hybrid-stories.gguf)");
  app.add_option("-p,--prompt", a.prompt, "prompt text (default: empty, start from BOS)");
  app.add_option("-n,--n-predict", a.n_predict, "tokens to generate")->check(CLI::Range(0, 1 << 20));
  app.add_option("--temp", a.temp, "temperature; 0 = greedy")->check(CLI::Range(0.0f, 100.0f));
  app.add_option("--top-k", a.top_k, "top-k (0 = off)")->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", a.top_p, "top-p (1 = off)")->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--min-p", a.min_p, "min-p (0 = off)")->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--typical", a.typical_p, "locally typical sampling (1 = off)")->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--repeat-penalty", a.repeat_penalty, "repetition penalty (1 = off)")
      ->check(CLI::Range(0.0f, 10.0f));
  app.add_option("--repeat-last-n", a.repeat_last_n, "tokens the penalties look back over")
      ->check(CLI::Range(-1, 1 << 20));
  app.add_option("--frequency-penalty", a.freq_penalty, "frequency penalty");
  app.add_option("--presence-penalty", a.presence_penalty, "presence penalty");
  app.add_option("--seed", a.seed, "RNG seed (default: random)")->check(CLI::Range(int64_t{0}, int64_t{0xffffffff}));
  app.add_option("--parallel", a.parallel, "continuations of the prompt, sharing it")->check(CLI::Range(1, 256));
  app.add_option("-t,--threads", a.threads, "worker threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  app.add_option("--ctx", a.ctx, "context size in tokens (default: prompt + parallel * n)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--ubatch", a.ubatch, "tokens per micro-batch")->check(CLI::Range(1, 1 << 16));
  auto* kv_opt = app.add_option("--kv", a.kv, "KV cache type (default f16; f32 with --llama2c)")
                     ->check(CLI::IsMember({"f16", "f32"}));
  app.add_option("--state-type", a.state_type, "recurrent state storage: f32 (default) or bf16 (half the bytes)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  app.add_flag("--llama2c", a.llama2c,
               "print as llama2.c's run does: no leading space, stop at BOS too, one final newline");
  app.add_flag("--no-echo", a.no_echo, "do not print the prompt");
  add_weight_load_flags(app, a.weights);
  app.add_flag("--ignore-eos", a.ignore_eos, "keep generating after end-of-generation tokens");
  auto* g_opt = app.add_option("--grammar", a.grammar_file, "constrain the output to a GBNF grammar file");
  app.add_option("--json-schema", a.schema_file, "constrain the output to a JSON Schema file")->excludes(g_opt);
  tandem::tools::add_spec_options(app, a.spec);
  if (auto rc = tandem::tools::parse_args(app, argc, argv)) return *rc;
  // llama2.c keeps its cache in f32; greedy near-ties make that visible.
  if (a.llama2c && kv_opt->count() == 0) a.kv = "f32";
  return run(a);
}

tandem::tools::CommandRegistration reg("run", "generate text after a prompt (default: the bundled model)", run_cmd);

}  // namespace cmd_run
