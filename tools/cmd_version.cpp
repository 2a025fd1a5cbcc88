// `tandem version`: build facts useful in bug reports.
#include <cstdio>

#include "command.h"

namespace cmd_version {
int run_version(int, char**) {
  std::printf("tandem 0.1.0 (C++20, built %s)\n", __DATE__);
  return 0;
}
tandem::tools::CommandRegistration reg("version", "print the version", run_version);
}  // namespace cmd_version
