#pragma once
// Speculative generation for `tandem run` (and `tandem bench`): the flags
// --draft-model M, --lookup N, --draft-max K, --draft-p-min P, and the
// generation loop over runtime::SpeculativeDecoder with its statistics.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/speculative.h"
#include "tandem/tandem.h"

namespace tandem::tools {

struct SpecArgs {
  std::string draft_model;  // "": no draft model
  int lookup = 0;           // prompt-lookup n-gram size (0: off)
  int draft_max = 8;        // K
  float p_min = 0.0f;       // draft model: stop drafting below this top probability
  bool requested() const { return !draft_model.empty() || lookup > 0; }
};

void add_spec_options(CLI::App& app, SpecArgs& a);

// A drafter for the target model: the draft model (loaded into `draft_holder`,
// which must outlive the drafter; vocabulary checked) or prompt lookup.
Expected<std::unique_ptr<runtime::Drafter>> make_drafter(const SpecArgs& a, const Model& target, int n_ctx,
                                                         int n_threads, std::unique_ptr<Model>& draft_holder);

struct SpecRun {
  std::vector<int32_t> tokens;  // emitted (a final stop token included)
  double prompt_s = 0, gen_s = 0;
  runtime::SpeculativeStats stats;
};

// Prefills `prompt` into sequence 0 of ctx (empty; snapshot_slots >= 1 for
// models with recurrent layers) and generates up to n_predict tokens; each
// emitted token goes to on_token as it is accepted.
Expected<SpecRun> generate_speculative(Context& ctx, runtime::Drafter* drafter, int draft_max,
                                       const std::vector<int32_t>& prompt, int n_predict, Sampler& sampler,
                                       const std::function<bool(int32_t)>& stop,
                                       const std::function<void(int32_t)>& on_token);

// "speculative: ..." statistics lines for stderr.
std::string format_spec_stats(const SpecRun& r);

}  // namespace tandem::tools
