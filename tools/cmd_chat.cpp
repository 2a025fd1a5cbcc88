// `tandem chat [-m MODEL] [--system TEXT] [-n N] [--temp T --top-k K --top-p P --min-p P --seed S]
//              [-t THREADS] [--ctx N]`
// Interactive chat on stdin/stdout with the model's chat template (plain
// "role: content" lines when the model has none). Every turn renders the whole
// conversation, keeps the longest token prefix the context already holds and
// processes only the new tokens (a cut of recurrent state restores the newest
// snapshot before it and replays). Commands: /save FILE, /load FILE, /reset,
// /quit. Per-turn token counts and speed go to stderr.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "command.h"
#include "tandem/tandem.h"

namespace cmd_chat {

using tandem::tools::fail;
using tandem::tools::WeightLoadFlags;
using tandem::tools::add_weight_load_flags;
using tandem::tools::seconds_since;
constexpr const char* kCmd = "tandem chat";

struct Args {
  std::string model, system;
  WeightLoadFlags weights;
  int n_reply = 256, threads = 0, ctx = 0;
  float temp = 0.8f, top_p = 0.95f, min_p = 0.05f;
  int top_k = 40;
  int64_t seed = -1;
};

void out(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

class Chat {
 public:
  Chat(const tandem::Model& m, tandem::Context& ctx, const Args& a, uint32_t seed)
      : m_(m), ctx_(ctx), a_(a), seed_(seed) {
    reset();
  }

  void reset() {
    turns_.clear();
    if (!a_.system.empty()) turns_.push_back({"system", a_.system});
    ctx_.clear();
  }

  // One user message -> streamed assistant reply.
  bool turn(const std::string& user) {
    turns_.push_back({"user", user});
    std::vector<int32_t> toks = m_.tokenize(m_.format_chat(turns_, true), true, true);
    if (toks.size() >= 2 && toks[0] == m_.bos() && toks[1] == m_.bos()) toks.erase(toks.begin());
    if (toks.empty()) toks.push_back(m_.bos());
    const int n_ctx = ctx_.options().n_ctx;
    if (static_cast<int>(toks.size()) + 1 > n_ctx) {
      turns_.pop_back();
      std::fprintf(stderr, "%s: error: the conversation (%zu tokens) no longer fits in the context (%d); /reset\n",
                   kCmd, toks.size(), n_ctx);
      return false;
    }
    // Keep the longest prefix the context already holds; decode the rest.
    const std::vector<int32_t> held = ctx_.seq_tokens(0);
    size_t keep = 0;
    while (keep < held.size() && keep < toks.size() && held[keep] == toks[keep]) ++keep;
    if (keep == toks.size()) --keep;  // at least one token to get logits from
    int replayed = 0;  // kept tokens re-decoded to rebuild recurrent state after the cut
    if (keep < held.size()) {
      if (auto st = ctx_.seq_rm(0, static_cast<int>(keep), -1); st) {
        replayed = ctx_.last_replayed_tokens();
      } else {
        std::fprintf(stderr, "%s: error: %s\n", kCmd, st.message().c_str());
        ctx_.clear();
        keep = 0;
      }
    }
    const auto t0 = std::chrono::steady_clock::now();
    tandem::Batch b;
    for (size_t i = keep; i < toks.size(); ++i) b.add(toks[i], static_cast<int>(i), {0}, i + 1 == toks.size());
    if (auto st = ctx_.decode(b); !st) {
      turns_.pop_back();
      std::fprintf(stderr, "%s: error: %s\n", kCmd, st.message().c_str());
      return false;
    }
    const double prompt_s = seconds_since(t0);

    tandem::SamplerOptions so;
    so.temperature = a_.temp;
    so.top_k = a_.top_k;
    so.top_p = a_.top_p;
    so.min_p = a_.min_p;
    so.seed = seed_ + static_cast<uint32_t>(turns_.size());
    tandem::Sampler sampler(so);
    tandem::TextStream stream(m_);
    std::string reply;
    int pos = static_cast<int>(toks.size()), n_gen = 0;
    const auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < a_.n_reply && pos < n_ctx; ++i) {
      const int32_t t = sampler.sample(ctx_.logits(0), ctx_.n_vocab());
      if (t < 0 || m_.is_eog(t)) break;
      sampler.accept(t);
      ++n_gen;
      const std::string s = stream.push(t);
      reply += s;
      out(s);
      b.clear();
      b.add(t, pos++, {0}, true);
      if (auto st = ctx_.decode(b); !st) {
        std::fprintf(stderr, "\n%s: error: %s\n", kCmd, st.message().c_str());
        break;
      }
    }
    const std::string rest = stream.flush();
    reply += rest;
    out(rest + "\n");
    const double gen_s = seconds_since(t1);
    turns_.push_back({"assistant", reply});
    std::fprintf(stderr,
                 "[reused %zu tokens, processed %zu new in %.3f s; replayed %d after a cut; %d generated, %.1f "
                 "tokens/s]\n",
                 keep, toks.size() - keep, prompt_s, replayed, n_gen, gen_s > 0 ? n_gen / gen_s : 0.0);
    return true;
  }

  // Context state + the conversation (FILE and FILE.chat.json).
  bool save(const std::string& path) {
    if (auto st = ctx_.save(path); !st) {
      std::fprintf(stderr, "%s: error: %s\n", kCmd, st.message().c_str());
      return false;
    }
    nlohmann::json j = nlohmann::json::array();
    for (const auto& t : turns_) j.push_back({{"role", t.role}, {"content", t.content}});
    std::ofstream(path + ".chat.json") << j.dump(1) << "\n";
    std::fprintf(stderr, "[saved %s]\n", path.c_str());
    return true;
  }

  bool load(const std::string& path) {
    std::vector<tandem::ChatTurn> turns;
    try {
      std::ifstream in(path + ".chat.json");
      if (!in) throw std::runtime_error("cannot open " + path + ".chat.json");
      for (const auto& t : nlohmann::json::parse(in))
        turns.push_back({t.at("role").get<std::string>(), t.at("content").get<std::string>()});
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: error: %s\n", kCmd, e.what());
      return false;
    }
    if (auto st = ctx_.load(path); !st) {
      std::fprintf(stderr, "%s: error: %s\n", kCmd, st.message().c_str());
      return false;
    }
    turns_ = std::move(turns);
    std::fprintf(stderr, "[loaded %s: %zu messages, %zu tokens]\n", path.c_str(), turns_.size(),
                 ctx_.seq_tokens(0).size());
    return true;
  }

 private:
  const tandem::Model& m_;
  tandem::Context& ctx_;
  const Args& a_;
  uint32_t seed_;
  std::vector<tandem::ChatTurn> turns_;
};

int run(const Args& a) {
  std::string path = a.model.empty() ? tandem::tools::find_default_model() : a.model;
  if (path.empty()) return fail(kCmd, "no -m MODEL given and the bundled default model was not found");
  tandem::ModelOptions mo;
  mo.weights = a.weights.value();
  auto model = tandem::Model::load(path, mo);
  if (!model) return fail(kCmd, model.error());
  tandem::ContextOptions co;
  co.n_ctx = a.ctx > 0 ? a.ctx : ((*model)->n_ctx_train() > 0 ? (*model)->n_ctx_train() : 2048);
  co.n_threads = a.threads;
  co.snapshot_slots = 8;  // restore points for cuts of recurrent state
  co.auto_snapshot = true;
  auto ctx = tandem::Context::create(**model, co);
  if (!ctx) return fail(kCmd, ctx.error());
  const uint32_t seed = a.seed >= 0 ? static_cast<uint32_t>(a.seed) : std::random_device{}();
  Chat chat(**model, **ctx, a, seed);
  const bool tty = isatty(fileno(stdin)) != 0;
  if (tty)
    std::fprintf(stderr, "%s (%s). /save FILE, /load FILE, /reset, /quit\n", (*model)->name().c_str(),
                 tandem::model_kind_name((*model)->kind()));
  std::string line;
  for (;;) {
    if (tty) std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      chat.reset();
      std::fprintf(stderr, "[reset]\n");
    } else if (line.rfind("/save ", 0) == 0) {
      chat.save(line.substr(6));
    } else if (line.rfind("/load ", 0) == 0) {
      chat.load(line.substr(6));
    } else if (line[0] == '/') {
      std::fprintf(stderr, "%s: error: unknown command %s (/save FILE, /load FILE, /reset, /quit)\n", kCmd,
                   line.c_str());
    } else {
      chat.turn(line);
    }
  }
  return 0;
}

int run_cmd(int argc, char** argv) {
  CLI::App app{"Chat with a model (its chat template; only new tokens are processed each turn)", kCmd};
  Args a;
  app.add_option("-m,--model", a.model, "GGUF model (default: the bundled model)");
  add_weight_load_flags(app, a.weights);
  app.add_option("--system", a.system, "system message");
  app.add_option("-n,--n-predict", a.n_reply, "max tokens per reply")->check(CLI::Range(1, 1 << 20));
  app.add_option("--temp", a.temp, "temperature; 0 = greedy")->check(CLI::Range(0.0f, 100.0f));
  app.add_option("--top-k", a.top_k, "top-k (0 = off)")->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", a.top_p, "top-p (1 = off)")->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--min-p", a.min_p, "min-p (0 = off)")->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--seed", a.seed, "RNG seed (default: random)")->check(CLI::Range(int64_t{0}, int64_t{0xffffffff}));
  app.add_option("-t,--threads", a.threads, "worker threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  app.add_option("--ctx", a.ctx, "context size (default: the model's training context)")
      ->check(CLI::NonNegativeNumber);
  if (auto rc = tandem::tools::parse_args(app, argc, argv)) return *rc;
  return run(a);
}

tandem::tools::CommandRegistration reg("chat", "interactive chat with /save, /load, /reset", run_cmd);

}  // namespace cmd_chat
