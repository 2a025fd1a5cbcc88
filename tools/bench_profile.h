#pragma once
// Per-op-kind breakdown of `tandem bench --profile` from the profiler counters
// (src/core/profiler.h): matmul split by layer part, the other op kinds, and
// "other" = wall time of the timed repetitions not covered by any kernel scope.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/profiler.h"

namespace tandem::tools::bench {

struct ProfileRow {
  std::string name;  // "matmul attention", "ssm scan", "other", ...
  double ns = 0;
  uint64_t calls = 0;
};

struct ProfileReport {
  std::vector<ProfileRow> rows;  // largest first; "other" last
  double total_ns = 0;           // wall time of the timed repetitions
  int64_t tokens = 0;            // tokens of the timed repetitions
};

ProfileReport make_profile(const prof::Counters& c, double total_seconds, int64_t tokens);
void print_profile(const ProfileReport& p);
nlohmann::ordered_json profile_json(const ProfileReport& p);

}  // namespace tandem::tools::bench
