// response_format / tools / tool_choice (see openai_format.h).
#include "runtime/grammar/openai_format.h"

#include <fmt/format.h>

#include "runtime/grammar/gbnf.h"
#include "runtime/json_schema.h"

namespace tandem::server {

using ojson = nlohmann::ordered_json;

namespace {

// The GBNF must also parse (catches what the converter let through).
std::optional<ApiError> check_gbnf(const std::string& gbnf, const char* param) {
  auto g = grammar::parse_gbnf(gbnf, param);
  if (!g.is_ok()) return invalid_request(g.status().message(), "invalid_value", param);
  return std::nullopt;
}

std::optional<ApiError> parse_response_format(const ojson& body, CompletionRequest& r) {
  auto it = body.find("response_format");
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_object()) return invalid_request("'response_format' must be an object", "invalid_type", "response_format");
  auto type = it->find("type");
  if (type == it->end() || !type->is_string())
    return invalid_request("'response_format.type' must be \"text\", \"json_object\" or \"json_schema\"", "invalid_value",
                           "response_format.type");
  const std::string t = type->get<std::string>();
  if (t == "text") return std::nullopt;
  if (t == "json_object") {
    r.grammar = json_object_gbnf();
    return std::nullopt;
  }
  if (t != "json_schema")
    return invalid_request(fmt::format("'response_format.type' '{}' is not one of text, json_object, json_schema", t),
                           "invalid_value", "response_format.type");
  auto js = it->find("json_schema");
  if (js == it->end() || !js->is_object())
    return invalid_request("'response_format.json_schema' must be an object holding 'schema'", "missing_field",
                           "response_format.json_schema");
  auto schema = js->find("schema");
  if (schema == js->end())
    return invalid_request("'response_format.json_schema.schema' is required", "missing_field",
                           "response_format.json_schema.schema");
  auto g = json_schema_to_gbnf(*schema);
  if (!g.is_ok())
    return invalid_request("response_format." + g.status().message(), "invalid_schema", "response_format.json_schema.schema");
  if (auto e = check_gbnf(*g, "response_format.json_schema.schema")) return e;
  r.grammar = std::move(g).value();
  return std::nullopt;
}

std::optional<ApiError> parse_tools(const ojson& body, CompletionRequest& r) {
  auto it = body.find("tools");
  const bool has_tools = it != body.end() && !it->is_null();
  if (has_tools) {
    if (auto e = validate_tools(*it)) return invalid_request(*e, "invalid_value", "tools");
    if (!it->empty()) r.tools_json = it->dump();
  }
  auto tc = body.find("tool_choice");
  if (tc == body.end() || tc->is_null()) return std::nullopt;
  if (tc->is_string()) {
    const std::string v = tc->get<std::string>();
    if (v != "auto" && v != "none" && v != "required")
      return invalid_request(fmt::format("'tool_choice' '{}' is not one of auto, none, required", v), "invalid_value",
                             "tool_choice");
    r.tool_choice = v;
  } else if (tc->is_object()) {
    auto f = tc->find("function");
    if (f == tc->end() || !f->is_object() || !f->contains("name") || !(*f)["name"].is_string())
      return invalid_request("'tool_choice.function.name' must be a string", "invalid_value", "tool_choice");
    r.tool_choice = (*f)["name"].get<std::string>();
  } else {
    return invalid_request("'tool_choice' must be a string or an object", "invalid_type", "tool_choice");
  }
  if (r.tool_choice != "auto" && r.tool_choice != "none" && r.tools_json.empty())
    return invalid_request("'tool_choice' requires a call but 'tools' is empty", "invalid_value", "tool_choice");
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> parse_structured_output(std::string_view text, bool chat, CompletionRequest& r) {
  const ojson body = ojson::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) return std::nullopt;  // reported by the main parser
  if (auto e = parse_response_format(body, r)) return e;
  if (!chat) {
    if (body.contains("tools") && !body["tools"].is_null())
      return invalid_request("'tools' is only supported by /v1/chat/completions", "unsupported_value", "tools");
    return std::nullopt;
  }
  if (auto e = parse_tools(body, r)) return e;
  if (!r.tools_json.empty() && r.tool_choice != "auto" && r.tool_choice != "none") {
    if (!r.grammar.empty())
      return invalid_request("'response_format' and a 'tool_choice' that requires a call cannot be combined",
                             "invalid_value", "tool_choice");
    auto g = tool_call_gbnf(ojson::parse(r.tools_json), r.tool_choice == "required" ? "" : r.tool_choice);
    if (!g.is_ok()) return invalid_request(g.status().message(), "invalid_value", "tool_choice");
    if (auto e = check_gbnf(*g, "tools")) return e;
    r.grammar = std::move(g).value();
  }
  return std::nullopt;
}

bool needs_tool_rendering(const CompletionRequest& r) {
  if (!r.tools_json.empty()) return true;
  for (const auto& m : r.messages) {
    if (m.role == "tool") return true;
    if (m.raw.find("\"tool_calls\"") != std::string::npos) return true;
  }
  return false;
}

ojson messages_json(const CompletionRequest& r) {
  ojson out = ojson::array();
  for (const auto& m : r.messages) {
    ojson j = m.raw.empty() ? ojson::object() : ojson::parse(m.raw, nullptr, false);
    if (j.is_discarded() || !j.is_object()) j = ojson::object();
    j["role"] = m.role;
    j["content"] = m.content;  // text parts already joined
    out.push_back(std::move(j));
  }
  return out;
}

nlohmann::json tool_calls_json(const std::vector<ToolCall>& calls, bool with_index) {
  nlohmann::json a = nlohmann::json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    nlohmann::json c = {{"id", calls[i].id},
                        {"type", "function"},
                        {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}};
    if (with_index) c["index"] = i;
    a.push_back(std::move(c));
  }
  return a;
}

}  // namespace tandem::server
