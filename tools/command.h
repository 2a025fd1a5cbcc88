#pragma once
// Subcommands of the `tandem` executable register themselves here: each
// tools/cmd_<name>.cpp defines one CommandRegistration object so adding a
// command never touches main.cpp. The executable is a unity build
// (tools/CMakeLists.txt): the files share translation units, so each keeps its
// helpers and its registration in `namespace cmd_<name>`, not an anonymous one.
#include <functional>
#include <string>
#include <vector>

namespace tandem::tools {

// argv[0] is "tandem <name>"; returns the process exit code.
using CommandFn = std::function<int(int argc, char** argv)>;

struct Command {
  std::string name;
  std::string summary;  // one line for `tandem --help`
  CommandFn run;
};

std::vector<Command>& command_registry();

struct CommandRegistration {
  CommandRegistration(std::string name, std::string summary, CommandFn fn) {
    command_registry().push_back({std::move(name), std::move(summary), std::move(fn)});
  }
};

}  // namespace tandem::tools
