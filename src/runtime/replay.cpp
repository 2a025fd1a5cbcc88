// Golden replay through the public Context API (see replay.h).
#include "runtime/replay.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace tandem::runtime {
namespace {

using json = nlohmann::json;

Outcome fail(Errc c, std::string msg) { return Outcome(c, std::move(msg)); }

// The whole .logits file (float32 little endian); our targets are little endian.
Expected<std::vector<float>> read_logits(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return fail(Errc::kNotFound, fmt::format("{}: cannot open reference logits", path));
  const auto size = static_cast<size_t>(f.tellg());
  if (size % 4 != 0)
    return fail(Errc::kCorrupt, fmt::format("{}: size {} is not a multiple of 4", path, size));
  std::vector<float> v(size / 4);
  f.seekg(0);
  if (!f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(size)))
    return fail(Errc::kIo, fmt::format("{}: read failed", path));
  return v;
}

// Reads an int field; -1 when absent or null (open range ends).
int get_int(const json& j, const char* key, int def = -1) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  return it->get<int>();
}

// One decode step: build the batch, run it, compare the output rows.
void run_decode(Context& ctx, const json& st, const std::vector<float>& ref, int n_vocab,
                double tol, double margin, StepReport& rep) {
  const auto& toks = st.at("tokens");
  const auto& pos = st.at("pos");
  const auto& seq = st.at("seq");
  const auto& out = st.at("out");
  const size_t n = toks.size();
  if (pos.size() != n || seq.size() != n) {
    rep.pass = false;
    rep.error = "malformed step: tokens/pos/seq lengths differ";
    return;
  }
  Batch b;
  std::vector<uint8_t> want(n, 0);
  for (const auto& o : out) {
    const int r = o.get<int>();
    if (r < 0 || static_cast<size_t>(r) >= n) {
      rep.pass = false;
      rep.error = fmt::format("malformed step: output row {} outside the batch", r);
      return;
    }
    want[r] = 1;
  }
  for (size_t i = 0; i < n; ++i)
    b.add(toks[i].get<int32_t>(), pos[i].get<int32_t>(), seq[i].get<std::vector<int32_t>>(), want[i]);

  if (Outcome o = ctx.decode(b); !o) {
    rep.pass = false;
    rep.error = o.message();
    return;
  }
  // The manifest lists output rows in `out` order; the context returns them in
  // batch order. Map batch row -> our output index.
  std::vector<int> ours_of_row(n, -1);
  for (int i = 0; i < ctx.n_outputs(); ++i) ours_of_row[ctx.output_row(i)] = i;

  const size_t off = st.at("logits_offset").get<size_t>();
  rep.n_rows = static_cast<int>(out.size());
  for (size_t k = 0; k < out.size(); ++k) {
    const size_t base = off + k * static_cast<size_t>(n_vocab);
    if (base + n_vocab > ref.size()) {
      rep.pass = false;
      rep.error = fmt::format("logits_offset {} + row {} lies past the end of the logits file", off, k);
      return;
    }
    const float* b_ref = ref.data() + base;
    const int oi = ours_of_row[out[k].get<int>()];
    const float* a = ctx.logits(oi);
    if (!a) {
      rep.pass = false;
      rep.error = fmt::format("no logits for batch row {}", out[k].get<int>());
      return;
    }
    const double e = nmse(a, b_ref, n_vocab);
    rep.max_nmse = std::max(rep.max_nmse, std::isnan(e) ? std::numeric_limits<double>::infinity() : e);
    if (!(e <= tol)) rep.pass = false;
    if (top2_margin(b_ref, n_vocab) > margin) {
      ++rep.argmax_checked;
      if (argmax(a, n_vocab) != argmax(b_ref, n_vocab)) {
        ++rep.argmax_mismatch;
        rep.pass = false;
      }
    }
  }
}

Outcome run_memory_op(Context& ctx, const std::string& op, const json& st) {
  if (op == "seq_cp")
    return ctx.seq_cp(st.at("src").get<int>(), st.at("dst").get<int>(), get_int(st, "p0"), get_int(st, "p1"));
  if (op == "seq_rm") return ctx.seq_rm(st.at("seq").get<int>(), get_int(st, "p0"), get_int(st, "p1"));
  if (op == "seq_keep") return ctx.seq_keep(st.at("seq").get<int>());
  if (op == "seq_add")
    return ctx.seq_add(st.at("seq").get<int>(), get_int(st, "p0"), get_int(st, "p1"),
                       st.at("delta").get<int>());
  if (op == "seq_div")
    return ctx.seq_div(st.at("seq").get<int>(), get_int(st, "p0"), get_int(st, "p1"), st.at("d").get<int>());
  return fail(Errc::kInvalidArgument, fmt::format("unknown op '{}'", op));
}

}  // namespace

double nmse(const float* a, const float* b, int n) {
  double num = 0, den = 0;
  for (int i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  if (den == 0) return num == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return num / den;
}

int argmax(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

double top2_margin(const float* x, int n) {
  if (n < 2) return std::numeric_limits<double>::infinity();
  double m1 = -std::numeric_limits<double>::infinity(), m2 = m1;
  for (int i = 0; i < n; ++i) {
    const double v = x[i];
    if (v > m1) {
      m2 = m1;
      m1 = v;
    } else if (v > m2) {
      m2 = v;
    }
  }
  return m1 - m2;
}

double default_tolerance(const Model& model) { return model.is_quantized() ? 1e-3 : 1e-5; }

Expected<ReplayReport> replay_golden(const Model& model, const std::string& manifest_path,
                                     const ReplayOptions& opts) {
  json m;
  {
    std::ifstream f(manifest_path);
    if (!f) return fail(Errc::kNotFound, fmt::format("{}: cannot open manifest", manifest_path));
    try {
      m = json::parse(f);
    } catch (const std::exception& e) {
      return fail(Errc::kCorrupt, fmt::format("{}: invalid JSON: {}", manifest_path, e.what()));
    }
  }
  ReplayReport rep;
  rep.manifest = manifest_path;
  rep.model = model.path();
  rep.quantized = model.is_quantized();
  rep.tolerance = opts.tolerance > 0 ? opts.tolerance : default_tolerance(model);

  try {
    const int n_vocab = m.at("n_vocab").get<int>();
    if (n_vocab != model.n_vocab())
      return fail(Errc::kInvalidArgument,
                  fmt::format("{}: manifest n_vocab {} but model {} has {}", manifest_path, n_vocab,
                              model.path(), model.n_vocab()));
    std::filesystem::path lp(manifest_path);
    lp.replace_extension(".logits");
    auto ref = read_logits(lp.string());
    if (!ref) return ref.outcome();

    for (const auto& sc : m.at("scenarios")) {
      ScenarioReport srep;
      srep.name = sc.at("name").get<std::string>();
      if (!opts.only.empty() && std::find(opts.only.begin(), opts.only.end(), srep.name) == opts.only.end())
        continue;
      ContextOptions co;
      co.n_seq_max = sc.at("n_seq_max").get<int>();
      co.n_ctx = sc.at("n_ctx").get<int>();
      co.n_ubatch = sc.at("n_ubatch").get<int>();
      co.n_threads = opts.n_threads;
      co.kv_type = opts.kv_type;
      auto ctx = Context::create(model, co);
      if (!ctx) {
        srep.pass = false;
        srep.error = ctx.error();
        rep.pass = false;
        rep.scenarios.push_back(std::move(srep));
        continue;
      }
      int idx = 0;
      for (const auto& st : sc.at("steps")) {
        StepReport s;
        s.index = idx++;
        s.op = st.at("op").get<std::string>();
        if (s.op == "decode") {
          run_decode(**ctx, st, *ref, n_vocab, rep.tolerance, opts.argmax_margin, s);
        } else if (Outcome o = run_memory_op(**ctx, s.op, st); !o) {
          s.pass = false;
          s.error = o.message();
        }
        srep.max_nmse = std::max(srep.max_nmse, s.max_nmse);
        srep.argmax_mismatch += s.argmax_mismatch;
        const bool ran = s.error.empty();
        srep.pass = srep.pass && s.pass;
        srep.steps.push_back(std::move(s));
        if (!ran) break;  // later steps depend on this one
      }
      rep.max_nmse = std::max(rep.max_nmse, srep.max_nmse);
      rep.pass = rep.pass && srep.pass;
      rep.scenarios.push_back(std::move(srep));
    }
  } catch (const std::exception& e) {
    return fail(Errc::kCorrupt, fmt::format("{}: malformed manifest: {}", manifest_path, e.what()));
  }
  return rep;
}

std::string format_report_text(const ReplayReport& r) {
  std::string s = fmt::format("manifest {}\nmodel    {} ({}; tolerance {:.0e})\n", r.manifest, r.model,
                              r.quantized ? "quantized" : "float weights", r.tolerance);
  for (const auto& sc : r.scenarios) {
    s += fmt::format("scenario {:<16} {}  max NMSE {:.3e}{}\n", sc.name, sc.pass ? "PASS" : "FAIL",
                     sc.max_nmse, sc.error.empty() ? "" : "  error: " + sc.error);
    for (const auto& st : sc.steps) {
      if (st.op == "decode")
        s += fmt::format("  step {:>2} decode  rows {:>3}  max NMSE {:.3e}  argmax {}/{}{}{}\n", st.index,
                         st.n_rows, st.max_nmse, st.argmax_checked - st.argmax_mismatch, st.argmax_checked,
                         st.pass ? "" : "  FAIL", st.error.empty() ? "" : "  error: " + st.error);
      else
        s += fmt::format("  step {:>2} {:<7}{}\n", st.index, st.op,
                         st.error.empty() ? "" : "  FAIL error: " + st.error);
    }
  }
  s += fmt::format("{}: max NMSE {:.3e} over {} scenarios\n", r.pass ? "PASS" : "FAIL", r.max_nmse,
                   r.scenarios.size());
  return s;
}

std::string format_report_json(const ReplayReport& r) {
  json j;
  j["manifest"] = r.manifest;
  j["model"] = r.model;
  j["quantized"] = r.quantized;
  j["tolerance"] = r.tolerance;
  j["max_nmse"] = r.max_nmse;
  j["pass"] = r.pass;
  j["scenarios"] = json::array();
  for (const auto& sc : r.scenarios) {
    json js;
    js["name"] = sc.name;
    js["pass"] = sc.pass;
    js["max_nmse"] = sc.max_nmse;
    js["argmax_mismatch"] = sc.argmax_mismatch;
    if (!sc.error.empty()) js["error"] = sc.error;
    js["steps"] = json::array();
    for (const auto& st : sc.steps) {
      json jt;
      jt["index"] = st.index;
      jt["op"] = st.op;
      if (st.op == "decode") {
        jt["rows"] = st.n_rows;
        jt["max_nmse"] = st.max_nmse;
        jt["argmax_checked"] = st.argmax_checked;
        jt["argmax_mismatch"] = st.argmax_mismatch;
      }
      jt["pass"] = st.pass;
      if (!st.error.empty()) jt["error"] = st.error;
      js["steps"].push_back(std::move(jt));
    }
    j["scenarios"].push_back(std::move(js));
  }
  return j.dump(1);
}

}  // namespace tandem::runtime
