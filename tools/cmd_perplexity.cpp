// `tandem perplexity -m MODEL -f FILE [--ctx 512] [-b BATCH] [-t THREADS] [--kv-type f16|f32]`
// Perplexity of a text file, scored as the reference engine's perplexity tool
// does: the whole file is tokenized once (with BOS when the model adds one) and
// cut into floor(n_tokens / ctx) chunks of ctx tokens; each chunk is decoded
// from empty memory (its first token replaced by BOS when the model adds one)
// with logits at every position, and only the second half is scored: for
// positions j in [ctx/2, ctx-1) the negative log-likelihood of token j+1 given
// tokens 0..j. Prints the running perplexity "[k]value" after each chunk and
// the final "PPL = X +/- Y" (Y: standard error of the perplexity, from the
// variance of the per-token NLL).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "cli_common.h"
#include "command.h"
#include "tandem/tandem.h"

namespace cmd_perplexity {

using tandem::tools::fail;
using tandem::tools::WeightLoadFlags;
using tandem::tools::add_weight_load_flags;
constexpr const char* kCmd = "tandem perplexity";

struct Args {
  std::string model, file;
  WeightLoadFlags weights;
  int ctx = 512, batch = 512, threads = 0;
  std::string kv = "f16";
};

// -log softmax(logits)[target], in double.
double nll_of(const float* logits, int n_vocab, int32_t target) {
  float mx = logits[0];
  for (int i = 1; i < n_vocab; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  return -(static_cast<double>(logits[target]) - mx - std::log(sum));
}

int run(const Args& a) {
  std::ifstream in(a.file, std::ios::binary);
  if (!in) return fail(kCmd, "cannot open text file " + a.file);
  const std::string text{std::istreambuf_iterator<char>(in), {}};
  tandem::ModelOptions mo;
  mo.weights = a.weights.value();
  auto model = tandem::Model::load(a.model, mo);
  if (!model) return fail(kCmd, model.error());
  const tandem::Model& m = **model;

  const std::vector<int32_t> toks = m.tokenize(text, true, false);
  const int n_ctx = a.ctx;
  if (static_cast<int64_t>(toks.size()) < 2LL * n_ctx)
    return fail(kCmd, a.file + " has " + std::to_string(toks.size()) + " tokens; perplexity with --ctx " +
                          std::to_string(n_ctx) + " needs at least " + std::to_string(2 * n_ctx) +
                          " (two chunks)");
  const int n_chunk = static_cast<int>(toks.size() / static_cast<size_t>(n_ctx));
  const int first = n_ctx / 2;

  tandem::ContextOptions co;
  co.n_ctx = n_ctx;
  co.n_ubatch = std::min(a.batch, n_ctx);
  co.n_threads = a.threads;
  co.kv_type = a.kv == "f32" ? tandem::KvType::kF32 : tandem::KvType::kF16;
  auto ctx_r = tandem::Context::create(m, co);
  if (!ctx_r) return fail(kCmd, ctx_r.error());
  tandem::Context& ctx = **ctx_r;
  const int n_vocab = ctx.n_vocab();

  std::fprintf(stderr, "%s: %zu tokens, %d chunks of %d, scoring positions %d..%d of each\n", kCmd, toks.size(),
               n_chunk, n_ctx, first, n_ctx - 2);
  const auto t0 = std::chrono::steady_clock::now();
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  std::vector<float> logits(static_cast<size_t>(n_ctx) * n_vocab);
  tandem::Batch b;
  for (int k = 0; k < n_chunk; ++k) {
    const size_t start = static_cast<size_t>(k) * n_ctx;
    ctx.clear();
    // Decode the chunk in -b sized calls, keeping every position's logits.
    for (int j0 = 0; j0 < n_ctx; j0 += a.batch) {
      const int j1 = std::min(n_ctx, j0 + a.batch);
      b.clear();
      for (int j = j0; j < j1; ++j) {
        int32_t t = toks[start + j];
        if (j == 0 && m.add_bos() && m.bos() >= 0) t = m.bos();
        b.add(t, j, {0}, true);
      }
      if (auto st = ctx.decode(b); !st) return fail(kCmd, "chunk " + std::to_string(k + 1) + ": " + st.message());
      for (int j = j0; j < j1; ++j)
        std::copy_n(ctx.logits(j - j0), n_vocab, logits.begin() + static_cast<ptrdiff_t>(j) * n_vocab);
    }
    for (int j = first; j < n_ctx - 1; ++j) {
      const double v = nll_of(logits.data() + static_cast<size_t>(j) * n_vocab, n_vocab, toks[start + j + 1]);
      nll += v;
      nll2 += v * v;
      ++count;
    }
    if (k == 0) {
      const double s = tandem::tools::seconds_since(t0);
      std::fprintf(stderr, "%s: %.2f s per chunk, about %.1f s in all\n", kCmd, s, s * n_chunk);
    }
    std::printf("[%d]%.4f,", k + 1, std::exp(nll / static_cast<double>(count)));
    std::fflush(stdout);
  }
  const double mean = nll / static_cast<double>(count);
  const double ppl = std::exp(mean);
  // Standard error of the mean NLL, carried to the perplexity (d exp(x) = exp(x) dx).
  const double var = nll2 / static_cast<double>(count) - mean * mean;
  const double err = count > 1 ? ppl * std::sqrt(std::max(0.0, var) / static_cast<double>(count - 1)) : 0.0;
  std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", ppl, err);
  std::fprintf(stderr, "%s: %lld tokens scored, mean NLL %.6f, %.2f s\n", kCmd, static_cast<long long>(count), mean,
               tandem::tools::seconds_since(t0));
  return 0;
}

int run_cmd(int argc, char** argv) {
  CLI::App app{"Perplexity of a text file (like the reference engine's perplexity tool)", kCmd};
  Args a;
  app.add_option("-m,--model", a.model, "GGUF model")->required();
  add_weight_load_flags(app, a.weights);
  app.add_option("-f,--file", a.file, "text file")->required();
  app.add_option("-c,--ctx", a.ctx, "tokens per chunk")->check(CLI::Range(4, 1 << 20));
  app.add_option("-b,--batch", a.batch, "tokens per decode call")->check(CLI::Range(1, 1 << 20));
  app.add_option("-t,--threads", a.threads, "worker threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  app.add_option("--kv-type", a.kv, "KV cache type")->check(CLI::IsMember({"f16", "f32"}));
  if (auto rc = tandem::tools::parse_args(app, argc, argv)) return *rc;
  return run(a);
}

tandem::tools::CommandRegistration reg("perplexity", "perplexity of a text file, in chunks", run_cmd);

}  // namespace cmd_perplexity
