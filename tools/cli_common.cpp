// Shared CLI helpers (see cli_common.h).
#include "cli_common.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <system_error>

namespace tandem::tools {

void add_weight_load_flags(CLI::App& app, WeightLoadFlags& f) {
  CLI::Option* mm = app.add_flag("--mmap", f.mmap, "use the model file through a read-only mapping (no copy, shared page cache)");
  CLI::Option* nm = app.add_flag("--no-mmap", f.no_mmap,
                                 "read the model file into memory (huge pages advised): slower load, faster decoding of "
                                 "large models. Default: read when the file takes at most half the available memory, "
                                 "else map");
  mm->excludes(nm);
}

std::optional<int> parse_args(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::printf("%s", app.help().c_str());
    return 0;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: error: %s\n", app.get_name().c_str(), e.what());
    return 2;
  }
  return std::nullopt;
}

int fail(const std::string& cmd, const std::string& msg) {
  std::fprintf(stderr, "%s: error: %s\n", cmd.c_str(), msg.c_str());
  return 1;
}

std::string find_default_model() {
  namespace fs = std::filesystem;
  std::vector<fs::path> candidates;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path dir = exe.parent_path();
    candidates.push_back(dir / ".." / ".." / "models" / kDefaultModelName);
    candidates.push_back(dir / ".." / "models" / kDefaultModelName);
    candidates.push_back(dir / "models" / kDefaultModelName);
  }
  candidates.push_back(fs::current_path(ec) / "models" / kDefaultModelName);
  for (const auto& c : candidates)
    if (fs::is_regular_file(c, ec)) return fs::weakly_canonical(c, ec).string();
  return "";
}

ProgressBar::ProgressBar(std::string label, double delay_s)
    : label_(std::move(label)), delay_(delay_s), t0_(std::chrono::steady_clock::now()),
      tty_(isatty(fileno(stderr)) != 0) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(int done, int total) {
  if (!tty_ || total <= 0 || seconds_since(t0_) < delay_) return;
  constexpr int kWidth = 30;
  const int fill = static_cast<int>(static_cast<long long>(kWidth) * done / total);
  std::string bar(static_cast<size_t>(fill), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r%s [%s] %d/%d", label_.c_str(), bar.c_str(), done, total);
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (!drawn_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace tandem::tools
