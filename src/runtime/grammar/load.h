#pragma once
// Building grammar constraints for a model: from GBNF text, a JSON Schema, or
// the files holding them (the `tandem run --grammar / --json-schema` flags).
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "runtime/grammar/constraint.h"

namespace tandem {
class Model;
}

namespace tandem::grammar {

Result<std::shared_ptr<GrammarConstraint>> constraint_from_gbnf(const Model& model, std::string_view gbnf,
                                                                std::string_view what = "grammar");
Result<std::shared_ptr<GrammarConstraint>> constraint_from_json_schema(const Model& model, std::string_view schema,
                                                                       std::string_view what = "json_schema");
// Reads `path` (GBNF when !is_schema, else a JSON Schema); errors name the file.
Result<std::shared_ptr<GrammarConstraint>> constraint_from_file(const Model& model, const std::string& path,
                                                                bool is_schema);

}  // namespace tandem::grammar
