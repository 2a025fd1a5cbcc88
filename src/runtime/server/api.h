#pragma once
// Types shared by the server pieces: OpenAI-style errors, the validated form
// of a completion request, and the transport-neutral HTTP request/response the
// service answers (tools/cmd_serve.cpp maps them onto cpp-httplib; keeping
// httplib out of tandem_runtime keeps its build flags out of the library).
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "tandem/sampler.h"

namespace tandem::server {

// {"error":{"message","type","code","param"}} with the HTTP status it goes out with.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string code;
  std::string param;  // the offending request field ("" when none)

  std::string to_json() const;
};

ApiError invalid_request(std::string message, std::string code, std::string param = "");

struct ChatMessage {
  std::string role;
  std::string content;
  std::string raw = {};  // the message object as sent (JSON text): tool_calls, tool_call_id, name
};

// What a client asked for, after validation (ranges checked, defaults filled).
struct CompletionRequest {
  bool chat = false;
  std::string model;                       // "" when absent
  std::string prompt;                      // completions: the prompt text
  std::vector<int32_t> prompt_tokens;      // completions: a prompt given as token ids
  bool prompt_is_tokens = false;
  std::vector<ChatMessage> messages;       // chat
  int max_tokens = -1;                     // -1: until the context window is full
  SamplerOptions sampling;                 // temperature, top_k/p, min_p, penalties, seed, bias
  bool seed_given = false;
  int n = 1;
  std::vector<std::string> stop;
  // completions: logprobs = k (0..20) asks for k alternatives per token;
  // chat: logprobs = true plus top_logprobs = k. -1 = no logprobs.
  int logprobs = -1;
  bool stream = false;
  // Structured output: GBNF text from response_format (json_object / json_schema)
  // or from a tool_choice that requires a call; "" = unconstrained.
  std::string grammar;
  // Tool calling (chat): the `tools` array as JSON text ("" = none) and
  // tool_choice: "auto", "none", "required" or the name of one function.
  std::string tools_json;
  std::string tool_choice = "auto";
};

// Limits the validator checks against (from the command line and the model).
struct RequestLimits {
  int max_n = 4;        // choices per request (<= parallel sequences)
  int n_vocab = 0;      // for logit_bias and token-id prompts
  int max_stop = 16;
};

// Parses and validates a /v1/completions (chat = false) or
// /v1/chat/completions (chat = true) body. Never throws; every failure is a
// 400 ApiError naming the field.
std::variant<CompletionRequest, ApiError> parse_completion_request(std::string_view body, bool chat,
                                                                   const RequestLimits& limits);

// ------------------------------------------------------------------ transport
struct HttpRequest {
  std::string method;         // "GET", "POST", ...
  std::string path;           // without the query string
  std::string body;
  std::string authorization;  // the Authorization header ("" when absent)
  // True once the client has gone away (closed its connection); null when the
  // transport cannot tell. Non-streaming completions poll it while they wait,
  // so a client that hangs up frees its sequence(s) at the next decode step.
  std::function<bool()> client_gone = nullptr;
};

// A server-sent-event stream the transport pulls from (one per streaming request).
class EventSource {
 public:
  virtual ~EventSource() = default;
  enum class Pull { kData, kIdle, kDone };
  // Waits up to `wait` for the next chunk of bytes to send: kData (out filled),
  // kIdle (nothing yet, ask again), kDone (finished, nothing more).
  virtual Pull next(std::string& out, std::chrono::milliseconds wait) = 0;
  // The client went away: stop generating and free the sequence(s).
  virtual void cancel() = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::shared_ptr<EventSource> stream;  // set: body is empty, send the stream instead

  static HttpResponse json(int status, std::string body);
  static HttpResponse error(const ApiError& e);
};

}  // namespace tandem::server
