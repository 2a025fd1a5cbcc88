#pragma once
// JSON Schema -> GBNF grammar (runtime/grammar/gbnf.h) for structured output.
//
// Supported: type (string, number, integer, boolean, null, object, array, or a
// list of them), properties + required (properties appear in schema order;
// optional ones may be left out), additionalProperties (an object without
// `properties` accepts any keys, with the additionalProperties schema as value
// schema when given; with `properties` other keys are not generated), enum,
// const, anyOf / oneOf, allOf of one schema, items, minItems / maxItems,
// minLength / maxLength, string `pattern` (a simple regex: literals, ., classes,
// \d \w \s, groups, |, * + ? {m,n}; anchors ^ $), $ref to #/$defs/... or
// #/definitions/..., {} / true (any JSON value). Not enforced: numeric
// minimum / maximum / multipleOf, string `format`, uniqueItems.
// Numbers are limited to 16 integer and 16 fraction digits and whitespace
// runs to 8 characters, so an unconstrained model cannot run on forever there.
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace tandem {

// A schema given as JSON text or a parsed value (ordered: properties are
// generated in the order the schema lists them). Errors name the schema path
// ("json_schema: /properties/age: unknown type 'int'").
Result<std::string> json_schema_to_gbnf(std::string_view schema_text);
Result<std::string> json_schema_to_gbnf(const nlohmann::ordered_json& schema);

// Any JSON value with an object at the top ({"type": "json_object"}).
std::string json_object_gbnf();

// A GBNF literal ("...") matching exactly the UTF-8 bytes of s.
std::string gbnf_literal(std::string_view s);

}  // namespace tandem
