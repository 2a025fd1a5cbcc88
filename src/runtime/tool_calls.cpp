// Tool calling: validation, rendering, forcing grammar, output parsing (see tool_calls.h).
#include "runtime/tool_calls.h"

#include <algorithm>
#include <random>

#include <fmt/format.h>

#include "core/log.h"
#include "runtime/internal.h"
#include "runtime/json_schema.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace tandem {

using ojson = nlohmann::ordered_json;

namespace {

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::string call_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("call_{:016x}", rng());
}

// {"name": ..., "arguments": {...} or "..."} (also "parameters") -> a call.
std::optional<ToolCall> call_of(const ojson& j, const std::vector<std::string>& names) {
  if (!j.is_object()) return std::nullopt;
  auto n = j.find("name");
  if (n == j.end() || !n->is_string()) return std::nullopt;
  if (std::find(names.begin(), names.end(), n->get<std::string>()) == names.end()) return std::nullopt;
  auto a = j.find("arguments");
  if (a == j.end()) a = j.find("parameters");
  ToolCall c;
  c.id = call_id();
  c.name = n->get<std::string>();
  if (a == j.end() || a->is_null()) c.arguments = "{}";
  else if (a->is_string()) c.arguments = a->get<std::string>();
  else c.arguments = a->dump();
  return c;
}

}  // namespace

std::vector<std::string> tool_names(const ojson& tools) {
  std::vector<std::string> out;
  if (!tools.is_array()) return out;
  for (const auto& t : tools)
    if (t.is_object() && t.contains("function") && t["function"].is_object() && t["function"].contains("name") &&
        t["function"]["name"].is_string())
      out.push_back(t["function"]["name"].get<std::string>());
  return out;
}

std::optional<std::string> validate_tools(const ojson& tools) {
  if (!tools.is_array()) return std::string("'tools' must be an array");
  for (size_t i = 0; i < tools.size(); ++i) {
    const ojson& t = tools[i];
    const std::string w = fmt::format("tools[{}]", i);
    if (!t.is_object()) return fmt::format("'{}' must be an object", w);
    auto type = t.find("type");
    if (type == t.end() || !type->is_string() || type->get<std::string>() != "function")
      return fmt::format("'{}.type' must be \"function\"", w);
    auto f = t.find("function");
    if (f == t.end() || !f->is_object()) return fmt::format("'{}.function' must be an object", w);
    auto name = f->find("name");
    if (name == f->end() || !name->is_string() || name->get<std::string>().empty())
      return fmt::format("'{}.function.name' must be a non-empty string", w);
    for (char c : name->get<std::string>())
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-')
        return fmt::format("'{}.function.name' may hold only letters, digits, '_' and '-'", w);
    if (auto p = f->find("parameters"); p != f->end() && !p->is_object())
      return fmt::format("'{}.function.parameters' must be a JSON Schema object", w);
  }
  return std::nullopt;
}

ToolOutput parse_tool_calls(std::string_view text, const std::vector<std::string>& names) {
  ToolOutput out;
  static constexpr std::string_view kOpen = "<tool_call>", kClose = "</tool_call>";
  std::string rest;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find(kOpen, pos);
    if (open == std::string_view::npos) break;
    size_t close = text.find(kClose, open + kOpen.size());
    const size_t body_end = close == std::string_view::npos ? text.size() : close;
    const ojson j = ojson::parse(text.substr(open + kOpen.size(), body_end - open - kOpen.size()), nullptr, false);
    auto call = j.is_discarded() ? std::nullopt : call_of(j, names);
    const size_t next = close == std::string_view::npos ? text.size() : close + kClose.size();
    if (call) {
      rest += text.substr(pos, open - pos);
      out.calls.push_back(std::move(*call));
    } else {
      rest += text.substr(pos, next - pos);
    }
    pos = next;
  }
  rest += text.substr(std::min(pos, text.size()));
  out.content = trim(rest);
  if (out.calls.empty() && !out.content.empty() && out.content.front() == '{') {
    // Fallback: the whole output is one {"name", "arguments"} object.
    const ojson j = ojson::parse(out.content, nullptr, false);
    if (!j.is_discarded())
      if (auto call = call_of(j, names)) {
        out.calls.push_back(std::move(*call));
        out.content.clear();
      }
  }
  return out;
}

Result<std::string> tool_call_gbnf(const ojson& tools, const std::string& only) {
  ojson any_of = ojson::array();
  for (const auto& t : tools) {
    const ojson& f = t["function"];
    const std::string name = f["name"].get<std::string>();
    if (!only.empty() && name != only) continue;
    ojson params = f.contains("parameters") ? f["parameters"] : ojson::object();
    if (params.is_object() && params.value("type", "") == "object" && !params.contains("properties"))
      params = ojson::object({{"type", "object"}});
    ojson call = {{"type", "object"},
                  {"properties", {{"name", {{"const", name}}}, {"arguments", params}}},
                  {"required", {"name", "arguments"}}};
    any_of.push_back(call);
  }
  if (any_of.empty()) return TANDEM_ERR(kInvalidArgument, "tool_choice names the function '{}', which is not in 'tools'", only);
  TANDEM_ASSIGN_OR_RETURN(std::string g, json_schema_to_gbnf(ojson{{"anyOf", any_of}}));
  // Rename the schema's start rule and wrap it in the tags.
  if (g.rfind("root ::= ", 0) != 0) return TANDEM_ERR(kInternal, "tool grammar: unexpected schema grammar layout");
  return std::string("root ::= \"<tool_call>\" \"\\n\"? tool-call \"\\n\"? \"</tool_call>\"\ntool-call ::= ") + g.substr(9);
}

std::string render_chat_with_tools(const Model& model, const ojson& messages, const ojson& tools, bool gen) {
  const Tokenizer& tok = *model.impl().tokenizer;
  if (!tok.chat_template().empty()) {
    auto t = ChatTemplate::parse(tok.chat_template());
    if (t.is_ok()) {
      auto text_of = [&](int32_t id) { return id >= 0 && id < tok.n_vocab() ? tok.token_text(id) : std::string(); };
      ojson msgs = messages;
      // Templates expect tool-call arguments as objects (they tojson them).
      for (auto& m : msgs)
        if (m.contains("tool_calls") && m["tool_calls"].is_array())
          for (auto& c : m["tool_calls"])
            if (c.contains("function") && c["function"].contains("arguments") && c["function"]["arguments"].is_string()) {
              ojson a = ojson::parse(c["function"]["arguments"].get<std::string>(), nullptr, false);
              if (!a.is_discarded()) c["function"]["arguments"] = a;
            }
      auto r = t.value().apply(msgs, gen, tools.empty() ? ojson(nullptr) : tools, text_of(tok.bos()), text_of(tok.eos()));
      if (r.is_ok()) return std::move(r).value();
      TANDEM_LOG_WARN("chat template with tools: {}; using the plain chat format", r.status().message());
    }
  }
  // Plain format: a system line describing the tools, tool calls in tags.
  std::string out;
  if (!tools.empty())
    out += "system: You can call these tools. To call one, answer with <tool_call>{\"name\": NAME, \"arguments\": "
           "{...}}</tool_call>. Tools: " + tools.dump() + "\n";
  for (const auto& m : messages) {
    out += m.value("role", "user") + ": ";
    if (m.contains("content") && m["content"].is_string()) out += m["content"].get<std::string>();
    if (m.contains("tool_calls") && m["tool_calls"].is_array())
      for (const auto& c : m["tool_calls"]) {
        const ojson& f = c["function"];
        ojson a = f.contains("arguments") && f["arguments"].is_string()
                      ? ojson::parse(f["arguments"].get<std::string>(), nullptr, false)
                      : f.value("arguments", ojson::object());
        if (a.is_discarded()) a = f["arguments"];
        out += "<tool_call>" + ojson{{"name", f.value("name", "")}, {"arguments", a}}.dump() + "</tool_call>";
      }
    out += "\n";
  }
  if (gen) out += "assistant: ";
  return out;
}

}  // namespace tandem
