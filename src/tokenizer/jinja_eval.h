#pragma once
// Evaluation of a parsed Jinja program against a context dict.
#include <string>

#include "core/status.h"
#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_value.h"

namespace tandem::jinja {

struct RenderLimits {
  size_t max_output = size_t{16} << 20;  // bytes of rendered text
  uint64_t max_steps = 20'000'000;       // evaluated nodes + loop iterations
  size_t max_range = 100'000;            // elements one range() / repetition may produce
};

// `context` must be a dict; its entries become the template's global variables
// (next to the built-in functions range, namespace, dict and raise_exception).
Result<std::string> render(const Program& program, const Value& context, const RenderLimits& limits = {});

// Built-ins (jinja_builtins.cpp). `line` is used in error messages.
Result<Value> apply_filter(const std::string& name, const Value& input, std::vector<Value>& args,
                           KwArgs& kwargs, int line, const RenderLimits& limits);
Result<bool> apply_test(const std::string& name, const Value& input, std::vector<Value>& args, int line);
// kNotFound when `obj` has no method `name`.
Result<Value> call_method(const Value& obj, const std::string& name, std::vector<Value>& args,
                          KwArgs& kwargs, int line);
// Python-style index normalisation for sequences: -1 -> last; returns false when out of range.
bool normalize_index(int64_t& i, size_t size);
// Code-point boundaries (byte offsets, plus the end) of a UTF-8 string.
std::vector<size_t> code_point_offsets(const std::string& s);

}  // namespace tandem::jinja
