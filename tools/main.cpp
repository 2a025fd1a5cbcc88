// `tandem <command> [args]`: dispatches to the registered subcommands.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "command.h"

namespace tandem::tools {
std::vector<Command>& command_registry() {
  static std::vector<Command> commands;
  return commands;
}
}  // namespace tandem::tools

namespace {

void print_usage() {
  auto cmds = tandem::tools::command_registry();
  std::sort(cmds.begin(), cmds.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::printf("tandem: an inference engine for hybrid attention + state-space language models\n\n");
  std::printf("usage: tandem <command> [options]   (tandem <command> --help for its options)\n\n");
  std::printf("commands:\n");
  for (const auto& c : cmds) std::printf("  %-16s %s\n", c.name.c_str(), c.summary.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    print_usage();
    return argc < 2 ? 1 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("tandem 0.1.0\n");
    return 0;
  }
  for (const auto& c : tandem::tools::command_registry()) {
    if (c.name == argv[1]) {
      std::string prog = std::string("tandem ") + argv[1];
      argv[1] = prog.data();
      return c.run(argc - 1, argv + 1);
    }
  }
  std::fprintf(stderr, "tandem: error: unknown command '%s' (see tandem --help)\n", argv[1]);
  return 2;
}
