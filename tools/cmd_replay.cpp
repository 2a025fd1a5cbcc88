// `tandem replay MODEL.gguf GOLDEN.json [--json] [--threads N] [--kv f16|f32] [--scenario NAME]`
// Replays every scenario of a reference golden manifest through the public
// Context API and prints, per scenario and step, the largest per-row NMSE and
// the argmax agreement. Exit 0 only when everything passes (1: a scenario
// failed, 2: bad arguments / unreadable files).
#include <cstdio>
#include <string>
#include <vector>

#include "cli_common.h"
#include "command.h"
#include "runtime/replay.h"
#include "tandem/tandem.h"

namespace cmd_replay {

int run_replay(int argc, char** argv) {
  CLI::App app{"Replay a golden manifest (reference logits) and compare", "tandem replay"};
  std::string model_path, manifest, kv = "f16";
  bool as_json = false;
  int threads = 0;
  double tol = 0;
  std::vector<std::string> only;
  app.add_option("model", model_path, "GGUF model file")->required();
  app.add_option("golden", manifest, "golden manifest (.json; the .logits file sits beside it)")->required();
  app.add_flag("--json", as_json, "machine-readable report on stdout");
  app.add_option("-t,--threads", threads, "worker threads (0: all cores)")->check(CLI::NonNegativeNumber);
  app.add_option("--kv", kv, "KV cache type")->check(CLI::IsMember({"f16", "f32"}));
  app.add_option("--tolerance", tol, "NMSE limit (default: 1e-5 float weights, 1e-3 quantized)")
      ->check(CLI::PositiveNumber);
  app.add_option("--scenario", only, "run only these scenarios");
  if (auto rc = tandem::tools::parse_args(app, argc, argv)) return *rc;

  auto model = tandem::Model::load(model_path);
  if (!model) {
    tandem::tools::fail("tandem replay", model.error());
    return 2;
  }
  tandem::runtime::ReplayOptions opts;
  opts.n_threads = threads;
  opts.kv_type = kv == "f32" ? tandem::KvType::kF32 : tandem::KvType::kF16;
  opts.tolerance = tol;
  opts.only = only;
  auto rep = tandem::runtime::replay_golden(**model, manifest, opts);
  if (!rep) {
    tandem::tools::fail("tandem replay", rep.error());
    return 2;
  }
  const std::string out = as_json ? tandem::runtime::format_report_json(*rep) + "\n"
                                  : tandem::runtime::format_report_text(*rep);
  std::fputs(out.c_str(), stdout);
  return rep->pass ? 0 : 1;
}

tandem::tools::CommandRegistration reg("replay", "replay a golden manifest and compare logits", run_replay);

}  // namespace cmd_replay
