#pragma once
// Golden replay: runs every scenario of a reference manifest (format:
// ../shared/fixtures/README.md, "golden/") through the public Context API and
// compares each output row with the reference logits.
//
// Per output row: NMSE = Σ(a−b)² / Σb² (a ours, b reference) must not exceed
// the tolerance (1e-5 for F32/F16/BF16 weights, 1e-3 for quantized weights),
// and our argmax must equal the reference's wherever the reference's top-2
// margin exceeds 1e-3 (smaller margins are ties within numerical noise).
// This is the library function behind `tandem replay` and the golden tests.
#include <cstdint>
#include <string>
#include <vector>

#include "tandem/tandem.h"

namespace tandem::runtime {

struct ReplayOptions {
  int n_threads = 0;                  // 0: hardware concurrency
  KvType kv_type = KvType::kF16;
  double tolerance = 0;               // 0: decide from the model's tensor types
  double argmax_margin = 1e-3;        // argmax must agree where the top-2 gap exceeds this
  std::vector<std::string> only;      // scenario names to run (empty: all)
};

struct StepReport {
  int index = 0;            // step index within the scenario
  std::string op;           // "decode", "seq_rm", ...
  int n_rows = 0;           // output rows compared (decode steps)
  double max_nmse = 0;      // largest per-row NMSE of this step
  int argmax_checked = 0;   // rows whose reference margin required agreement
  int argmax_mismatch = 0;
  bool pass = true;
  std::string error;        // a failed operation ("" when it ran)
};

struct ScenarioReport {
  std::string name;
  std::vector<StepReport> steps;
  double max_nmse = 0;
  int argmax_mismatch = 0;
  bool pass = true;
  std::string error;        // context creation failure etc.
};

struct ReplayReport {
  std::string manifest;     // path
  std::string model;        // model path
  bool quantized = false;
  double tolerance = 0;
  std::vector<ScenarioReport> scenarios;
  double max_nmse = 0;
  bool pass = true;
};

// Errors: unreadable / malformed manifest or logits file, n_vocab mismatch.
// Scenario failures (a refused decode, NMSE over tolerance) are in the report.
Expected<ReplayReport> replay_golden(const Model& model, const std::string& manifest_path,
                                     const ReplayOptions& opts = {});

// Per-row measures, exposed for tests.
double nmse(const float* ours, const float* ref, int n);
int argmax(const float* x, int n);
double top2_margin(const float* x, int n);  // largest minus second largest

// The tolerance the pass criteria give for a model.
double default_tolerance(const Model& model);

// Human-readable table / JSON of a report (what `tandem replay` prints).
std::string format_report_text(const ReplayReport& r);
std::string format_report_json(const ReplayReport& r);

}  // namespace tandem::runtime
