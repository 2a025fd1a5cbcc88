#pragma once
// OpenAI-style tool calling on top of the chat template and the grammar engine:
//   - validate the request's `tools` array,
//   - render a conversation with tool definitions, assistant tool calls and
//     `tool` results through the model's chat template (Granite-4.0 and
//     Hermes/Qwen-style templates take `tools` and `message.tool_calls`), or a
//     plain fallback format for models without a template,
//   - a GBNF grammar that forces `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`
//     with the arguments following each tool's parameter schema (tool_choice
//     "required" or a named function),
//   - parse the model's output back: `<tool_call>` JSON blocks (Granite-4.0,
//     Hermes); as a fallback, an output that is one JSON object with "name" and
//     "arguments" (ChatML-style models without the tags).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace tandem {

class Model;

struct ToolCall {
  std::string id;         // "call_..."
  std::string name;
  std::string arguments;  // JSON text of the arguments object
};

struct ToolOutput {
  std::string content;          // text outside the tool-call blocks (trimmed)
  std::vector<ToolCall> calls;  // in order of appearance
};

// Checks an OpenAI `tools` array: [{"type":"function","function":{"name","description"?,"parameters"?}}].
// Returns an error naming the field ("tools[1].function.name ...") or nullopt.
std::optional<std::string> validate_tools(const nlohmann::ordered_json& tools);

// Parses tool calls out of generated text. `names`: the tools offered (a call
// to another name is left in the content).
ToolOutput parse_tool_calls(std::string_view text, const std::vector<std::string>& names);

// GBNF for one tool call of any offered tool (only = "") or of the named one.
Result<std::string> tool_call_gbnf(const nlohmann::ordered_json& tools, const std::string& only);

// The prompt text of a chat with tools. messages: OpenAI message objects
// (role, content, tool_calls, tool_call_id, name).
std::string render_chat_with_tools(const Model& model, const nlohmann::ordered_json& messages,
                                   const nlohmann::ordered_json& tools, bool add_generation_prompt);

std::vector<std::string> tool_names(const nlohmann::ordered_json& tools);

}  // namespace tandem
