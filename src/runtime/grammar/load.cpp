// Grammar constraints for a model (see load.h).
#include "runtime/grammar/load.h"

#include <fstream>
#include <sstream>

#include "runtime/json_schema.h"
#include "tandem/tandem.h"

namespace tandem::grammar {

Result<std::shared_ptr<GrammarConstraint>> constraint_from_gbnf(const Model& model, std::string_view gbnf,
                                                                std::string_view what) {
  return GrammarConstraint::create(gbnf, GrammarVocab::of(model), what);
}

Result<std::shared_ptr<GrammarConstraint>> constraint_from_json_schema(const Model& model, std::string_view schema,
                                                                       std::string_view what) {
  auto text = json_schema_to_gbnf(schema);
  if (!text.is_ok()) {
    std::string msg = text.status().message();
    if (what != "json_schema" && msg.rfind("json_schema:", 0) == 0) msg = std::string(what) + msg.substr(11);
    return Status(text.status().code(), msg);
  }
  return GrammarConstraint::create(*text, GrammarVocab::of(model), what);
}

Result<std::shared_ptr<GrammarConstraint>> constraint_from_file(const Model& model, const std::string& path,
                                                                bool is_schema) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return TANDEM_ERR(kNotFound, "{}: cannot open the {} file", path, is_schema ? "JSON schema" : "grammar");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  return is_schema ? constraint_from_json_schema(model, text, path) : constraint_from_gbnf(model, text, path);
}

}  // namespace tandem::grammar
