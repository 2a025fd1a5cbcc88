// `tandem quantize IN.gguf OUT.gguf TYPE`: re-store a model's weight matrices.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>

#include "command.h"
#include "format_bytes.h"
#include "model/tools/quantize.h"
#include "tandem/tandem.h"

namespace cmd_quantize {

int run_quantize(int argc, char** argv) {
  CLI::App app{"Quantize (or convert) the weight matrices of a GGUF model"};
  app.name(argv[0]);
  std::string in, out, type;
  tandem::model::QuantizeOptions opts;
  app.add_option("in", in, "input .gguf")->required();
  app.add_option("out", out, "output .gguf")->required();
  app.add_option("type", type, "target: " + tandem::model::quant_target_names())->required();
  app.add_option("-t,--threads", opts.n_threads, "worker threads (default: all cores, at most 8)");
  CLI11_PARSE(app, argc, argv);
  auto target = tandem::model::parse_quant_target(type);
  if (!target.is_ok()) {
    std::fprintf(stderr, "tandem quantize: error: %s\n", target.status().to_string().c_str());
    return 2;
  }
  // Only a model Tandem can load is quantized: a file with a wrong tensor
  // shape or type would otherwise become a second broken file.
  if (auto m = tandem::Model::load(in); !m) {
    std::fprintf(stderr, "tandem quantize: error: %s\n", m.error().c_str());
    return 1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto st = tandem::model::quantize_gguf(in, out, *target, opts);
  if (!st.is_ok()) {
    std::fprintf(stderr, "tandem quantize: error: %s\n", st.status().to_string().c_str());
    return 1;
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s (%s): %d tensors converted, %d copied, %.1f MiB -> %.1f MiB in %.2f s\n",
              out.c_str(), target->name.c_str(), st->n_converted, st->n_copied,
              tandem::tools::to_mib(static_cast<double>(st->bytes_in)),
              tandem::tools::to_mib(static_cast<double>(st->bytes_out)), sec);
  return 0;
}

tandem::tools::CommandRegistration reg("quantize", "quantize a GGUF model's weights", run_quantize);

}  // namespace cmd_quantize
