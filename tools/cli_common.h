#pragma once
// Helpers shared by the `tandem` subcommands built on the public API:
// argument parsing with one clear error line, locating the bundled default
// model, a stderr progress bar, timing.
#include <CLI/CLI.hpp>

#include <chrono>
#include <optional>
#include <string>

#include "tandem/tandem.h"

namespace tandem::tools {

// `--mmap` / `--no-mmap` (mutually exclusive): how the model file is held
// (tandem::WeightLoad); neither = kAuto.
struct WeightLoadFlags {
  bool mmap = false, no_mmap = false;
  WeightLoad value() const { return mmap ? WeightLoad::kMmap : no_mmap ? WeightLoad::kRead : WeightLoad::kAuto; }
};
void add_weight_load_flags(CLI::App& app, WeightLoadFlags& f);

// Parses argv with app. Returns an exit code when the command must stop now
// (0 after --help, 2 after a parse error, printed as one line
// "<cmd>: error: ..." on stderr), nullopt to go on.
std::optional<int> parse_args(CLI::App& app, int argc, char** argv);

// Prints "<cmd>: error: <msg>" on stderr and returns 1.
int fail(const std::string& cmd, const std::string& msg);

// The bundled default model `models/tiny-hybrid-stories.gguf`: looked up next
// to the executable (<exe dir>/../../models for build/bin, <exe dir>/../models,
// <exe dir>/models) and in the current directory's models/. "" when not found.
std::string find_default_model();
inline constexpr const char* kDefaultModelName = "tiny-hybrid-stories.gguf";

// A one-line progress bar on stderr, shown only once the work has taken more
// than `delay` seconds (and only when stderr is a terminal unless forced).
class ProgressBar {
 public:
  explicit ProgressBar(std::string label, double delay_s = 1.0);
  ~ProgressBar();
  void update(int done, int total);
  void finish();  // erases the bar if it was drawn

 private:
  std::string label_;
  double delay_;
  std::chrono::steady_clock::time_point t0_;
  bool drawn_ = false, tty_ = false;
};

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace tandem::tools
