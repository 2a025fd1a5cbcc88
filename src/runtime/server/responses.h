#pragma once
// OpenAI-shaped JSON bodies of completion responses, streaming chunks
// included, and the server-sent-event source that turns a Ticket's updates
// into `data: {...}` events ending with `data: [DONE]`.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "runtime/server/api.h"
#include "runtime/server/scheduler.h"
#include "tandem/tandem.h"

namespace tandem::server {

// JSON text of a response body. Generated text may hold bytes that are not
// UTF-8 (byte-fallback tokens): they are replaced instead of failing the response.
std::string dump_response(const nlohmann::json& j);

struct ResponseMeta {
  std::string id;      // "cmpl-..." / "chatcmpl-..."
  std::string model;
  int64_t created = 0; // unix seconds
  bool chat = false;
  int logprobs = -1;   // as in the request (-1: none)
  int n = 1;
  // Chat with tools (tool_choice not "none"): the offered function names. The
  // output is then parsed for tool calls (streaming: text is held back until
  // the choice ends, then sent as content and/or tool_calls deltas).
  std::vector<std::string> tool_names;
};

// The accumulated result of one choice (non-streaming responses).
struct ChoiceResult {
  std::string text;
  std::vector<TokenLogprob> logprobs;
  std::string finish_reason;
  std::string tool_calls;  // OpenAI tool_calls array as JSON text ("" = none)
};

std::string format_final(const ResponseMeta& m, const std::vector<ChoiceResult>& choices, int prompt_tokens,
                         int completion_tokens, const Model& model, int cached_tokens = 0);

// A streaming source over a ticket (cancels the request when dropped early).
std::shared_ptr<EventSource> make_event_stream(std::shared_ptr<Ticket> ticket, ResponseMeta meta,
                                               const Model& model);

std::string random_id(const char* prefix);

}  // namespace tandem::server
