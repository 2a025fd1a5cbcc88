// `tandem inspect FILE.gguf [--json]`: what a GGUF file holds — metadata (long
// arrays and strings summarised), tensors (name, type, shape, bytes), parameter
// count and file size. The whole file is validated first; a bad file gives one
// error line and exit code 1.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "command.h"
#include "format_bytes.h"
#include "inspect_memory.h"
#include "gguf/gguf.h"
#include "model/inspect_layers.h"

namespace cmd_inspect {

using tandem::gguf::File;
using tandem::gguf::Value;
using tandem::gguf::ValueType;
using Json = nlohmann::ordered_json;
using tandem::tools::human_bytes;
using tandem::tools::human_count;

struct Options {
  std::string path;
  bool json = false;
  size_t max_items = 8;     // array items shown (text) / kept (json, unless --full)
  size_t max_chars = 120;   // string bytes shown in text mode
  bool full = false;        // json: complete arrays and strings
};

std::string type_label(const Value& v) {
  if (!v.is_array()) return std::string(tandem::gguf::value_type_name(v.type()));
  return fmt::format("{}[{}]", tandem::gguf::value_type_name(v.elem_type()), v.size());
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", shape[i]);
  return s + "]";
}

int64_t parameter_count(const File& f) {
  int64_t n = 0;
  for (const auto& t : f.tensors()) n += t.n_elements();
  return n;
}

// ---- JSON -------------------------------------------------------------------

Json value_json(const Value& v, const Options& o) {
  switch (v.type()) {
    case ValueType::kString: {
      std::string_view s = v.as_string();
      if (o.full || s.size() <= 4096) return std::string(s);
      return std::string(s.substr(0, 4096));
    }
    case ValueType::kBool: return v.as_bool();
    case ValueType::kF32: case ValueType::kF64: return v.as_f64();
    case ValueType::kArray: {
      Json a = Json::array();
      size_t n = o.full ? v.size() : std::min(v.size(), o.max_items);
      for (size_t i = 0; i < n; ++i) a.push_back(value_json(v.at(i), o));
      return a;
    }
    default:
      if (tandem::gguf::value_type_is_signed(v.type())) return v.as_i64();
      return v.as_u64();
  }
}

Json build_json(const File& f, const Options& o) {
  Json j;
  j["file"] = f.path();
  j["file_size"] = f.file_size();
  j["version"] = f.version();
  j["alignment"] = f.alignment();
  j["data_offset"] = f.data_offset();
  Json meta = Json::object();
  for (const auto& [key, v] : f.metadata()) {
    Json e;
    e["type"] = std::string(tandem::gguf::value_type_name(v.type()));
    if (v.is_array()) {
      e["elem_type"] = std::string(tandem::gguf::value_type_name(v.elem_type()));
      e["length"] = v.size();
      e["truncated"] = !o.full && v.size() > o.max_items;
    } else if (v.is_string()) {
      e["length"] = v.as_string().size();
    }
    e["value"] = value_json(v, o);
    meta[key] = std::move(e);
  }
  j["metadata"] = std::move(meta);
  Json tensors = Json::array();
  for (const auto& t : f.tensors()) {
    Json e;
    e["name"] = t.name;
    e["type"] = std::string(tandem::dtype_name(t.type));
    e["shape"] = t.shape;
    e["offset"] = t.offset;
    e["bytes"] = t.bytes;
    tensors.push_back(std::move(e));
  }
  j["tensors"] = std::move(tensors);
  j["n_tensors"] = f.tensors().size();
  j["n_params"] = parameter_count(f);
  // Per-layer kinds (model helper: src/model/inspect_layers.h).
  j["model"] = tandem::model::layer_kinds_json(f);
  return j;
}

// ---- text -------------------------------------------------------------------

void print_text(const File& f, const Options& o) {
  std::printf("file: %s\n", f.path().c_str());
  std::printf("size: %zu bytes (%s)\n", f.file_size(), human_bytes(static_cast<double>(f.file_size())).c_str());
  std::printf("gguf version: %u, alignment: %zu, data section at byte %zu\n", f.version(),
              f.alignment(), f.data_offset());
  std::printf("\nmetadata (%zu keys):\n", f.metadata().size());
  size_t kw = 0;
  for (const auto& kv : f.metadata()) kw = std::max(kw, kv.first.size());
  for (const auto& [key, v] : f.metadata()) {
    std::string line = fmt::format("  {:<{}}  {:<14} {}", key, kw, type_label(v),
                                   v.to_string(o.max_items, o.max_chars));
    std::printf("%s\n", line.c_str());
  }
  std::printf("\ntensors (%zu):\n", f.tensors().size());
  size_t nw = 4;
  for (const auto& t : f.tensors()) nw = std::max(nw, t.name.size());
  if (!f.tensors().empty())
    std::printf("  %s\n", fmt::format("{:<{}}  {:<8} {:<26} {:>12}", "name", nw, "type", "shape", "bytes").c_str());
  for (const auto& t : f.tensors()) {
    std::string line = fmt::format("  {:<{}}  {:<8} {:<26} {:>12}", t.name, nw,
                                   tandem::dtype_name(t.type), shape_string(t.shape), t.bytes);
    std::printf("%s\n", line.c_str());
  }
  int64_t params = parameter_count(f);
  std::printf("\nparameters: %lld (%s)\n", static_cast<long long>(params), human_count(params).c_str());
  // Per-layer kinds (model helper: src/model/inspect_layers.h).
  tandem::model::print_layer_kinds(f);
}

int run_inspect(int argc, char** argv) {
  Options o;
  CLI::App app{"Show what a GGUF file holds: metadata, tensors, parameter count, file size.",
               "tandem inspect"};
  app.add_option("file", o.path, "GGUF file")->required();
  app.add_flag("--json", o.json, "print one JSON document instead of text");
  app.add_option("--max-items", o.max_items, "array items shown before summarising")
      ->capture_default_str();
  app.add_flag("--full", o.full, "JSON: include complete arrays and strings");
  // --memory: what a context configuration would take (tools/inspect_memory.h).
  bool memory = false;
  tandem::tools::MemoryQuery mq;
  app.add_flag("--memory", memory, "print the memory a context would take (with --ctx, --parallel, --kv-type)");
  app.add_option("--ctx", mq.n_ctx, "--memory: context cells (default: the model's training context)")
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("--parallel", mq.n_parallel, "--memory: sequences")->check(CLI::Range(1, 256));
  app.add_option("--kv-type", mq.kv_type, "--memory: KV cache type")->check(CLI::IsMember({"f16", "f32"}));
  app.add_option("--state-type", mq.state_type, "--memory: recurrent state type")
      ->check(CLI::IsMember({"f32", "bf16"}));
  app.add_option("--snapshot-slots", mq.snapshot_slots, "--memory: recurrent-state snapshots")
      ->check(CLI::Range(0, 1 << 20));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "tandem inspect: error: %s\n", e.what());
    return 1;
  }
  if (memory) {
    mq.path = o.path;
    mq.json = o.json;
    return tandem::tools::print_memory(mq);
  }
  auto file = File::open(o.path);
  if (!file.is_ok()) {
    std::fprintf(stderr, "tandem inspect: error: %s\n", file.status().message().c_str());
    return 1;
  }
  if (o.json) {
    // Token strings need not be valid UTF-8: replace bad bytes rather than throw.
    std::string out = build_json(**file, o).dump(2, ' ', false, Json::error_handler_t::replace);
    std::printf("%s\n", out.c_str());
  } else {
    print_text(**file, o);
  }
  return 0;
}

tandem::tools::CommandRegistration reg("inspect", "show the metadata and tensors of a GGUF file",
                                       run_inspect);

}  // namespace cmd_inspect
