// `tandem gen-model --arch granitehybrid --preset P [--type T] [--seed S] [--vocab V] OUT.gguf`
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>

#include "command.h"
#include "format_bytes.h"
#include "model/tools/gen_model.h"
#include "model/tools/quantize.h"

namespace cmd_gen_model {

int run_gen_model(int argc, char** argv) {
  CLI::App app{"Write a model with random weights and the exact layout of a released checkpoint"};
  app.name(argv[0]);
  tandem::model::GenModelOptions opts;
  std::string out;
  app.add_option("--arch", opts.arch, "architecture (granitehybrid)");
  app.add_option("--preset", opts.preset, tandem::model::granitehybrid_preset_names())->required();
  app.add_option("--type", opts.type, "weight type: " + tandem::model::quant_target_names());
  app.add_option("--seed", opts.seed, "random seed");
  app.add_option("--vocab", opts.vocab_path,
                 "GGUF whose tokenizer.* keys to copy (default: the dbrx vocabulary; tiny: tok512)");
  app.add_option("-t,--threads", opts.n_threads, "worker threads (default: all cores, at most 8)");
  app.add_option("out", out, "output .gguf")->required();
  CLI11_PARSE(app, argc, argv);
  const auto t0 = std::chrono::steady_clock::now();
  auto st = tandem::model::gen_model(opts, out);
  if (!st.is_ok()) {
    std::fprintf(stderr, "tandem gen-model: error: %s\n", st.status().to_string().c_str());
    return 1;
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s: %s %s, %d tensors, %.1f M parameters, vocab %d, %.1f MiB of weights in %.2f s\n",
              out.c_str(), opts.preset.c_str(), opts.type.c_str(), st->n_tensors,
              static_cast<double>(st->n_params) / 1e6, st->n_vocab,
              tandem::tools::to_mib(static_cast<double>(st->bytes)), sec);
  return 0;
}

tandem::tools::CommandRegistration reg("gen-model", "write a random-weight model with a real layout",
                                       run_gen_model);

}  // namespace cmd_gen_model
