// Per-op-kind breakdown of `tandem bench --profile` (see bench_profile.h).
#include "bench_profile.h"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

namespace tandem::tools::bench {

ProfileReport make_profile(const prof::Counters& c, double total_seconds, int64_t tokens) {
  ProfileReport p;
  p.total_ns = total_seconds * 1e9;
  p.tokens = tokens;
  double covered = 0;
  for (int o = 0; o < prof::kNumOps; ++o) {
    const auto op = static_cast<prof::Op>(o);
    if (op == prof::Op::kMatmul) {
      // Matmul per layer part (the section the model's layer code was in).
      for (int s = 0; s < prof::kNumSections; ++s) {
        if (c.calls[o][s] == 0) continue;
        p.rows.push_back({fmt::format("matmul {}", prof::section_name(static_cast<prof::Section>(s))),
                          static_cast<double>(c.ns[o][s]), c.calls[o][s]});
        covered += static_cast<double>(c.ns[o][s]);
      }
      continue;
    }
    ProfileRow r{prof::op_name(op), 0, 0};
    for (int s = 0; s < prof::kNumSections; ++s) {
      r.ns += static_cast<double>(c.ns[o][s]);
      r.calls += c.calls[o][s];
    }
    if (r.calls == 0) continue;
    covered += r.ns;
    p.rows.push_back(r);
  }
  std::sort(p.rows.begin(), p.rows.end(), [](const ProfileRow& a, const ProfileRow& b) { return a.ns > b.ns; });
  p.rows.push_back({"other (not in a kernel scope)", std::max(0.0, p.total_ns - covered), 0});
  return p;
}

void print_profile(const ProfileReport& p) {
  std::printf("  %-32s %8s %12s %12s %10s\n", "op", "%", "ms total", "ms/token", "calls");
  const double tok = p.tokens > 0 ? static_cast<double>(p.tokens) : 1.0;
  for (const auto& r : p.rows) {
    const double pct = p.total_ns > 0 ? 100.0 * r.ns / p.total_ns : 0.0;
    std::printf("  %-32s %7.2f%% %12.3f %12.4f %10llu\n", r.name.c_str(), pct, r.ns / 1e6, r.ns / 1e6 / tok,
                static_cast<unsigned long long>(r.calls));
  }
  std::printf("  %-32s %7.2f%% %12.3f %12.4f\n", "total (wall)", 100.0, p.total_ns / 1e6, p.total_ns / 1e6 / tok);
}

nlohmann::ordered_json profile_json(const ProfileReport& p) {
  nlohmann::ordered_json j;
  j["total_ns"] = p.total_ns;
  j["tokens"] = p.tokens;
  auto rows = nlohmann::ordered_json::array();
  for (const auto& r : p.rows) rows.push_back({{"op", r.name}, {"ns", r.ns}, {"calls", r.calls}});
  j["ops"] = std::move(rows);
  return j;
}

}  // namespace tandem::tools::bench
