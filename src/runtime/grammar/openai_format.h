#pragma once
// The structured-output and tool fields of an OpenAI request body:
// response_format ({"type":"text"|"json_object"|"json_schema"}), tools and
// tool_choice. Fills CompletionRequest::grammar / tools_json / tool_choice;
// a malformed schema or tool list is a 400 naming the problem.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/server/api.h"
#include "runtime/tool_calls.h"

namespace tandem::server {

std::optional<ApiError> parse_structured_output(std::string_view body, bool chat, CompletionRequest& r);

// True when the chat needs the tool-aware rendering (tools offered, or
// messages holding tool calls / tool results).
bool needs_tool_rendering(const CompletionRequest& r);
// The messages as OpenAI objects (tool_calls etc. kept) for render_chat_with_tools.
nlohmann::ordered_json messages_json(const CompletionRequest& r);

// OpenAI `tool_calls` array: [{"id","type":"function","function":{"name","arguments"}}],
// with "index" on each entry when `with_index` (streaming deltas).
nlohmann::json tool_calls_json(const std::vector<ToolCall>& calls, bool with_index);

}  // namespace tandem::server
