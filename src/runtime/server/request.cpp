// Parsing and validation of completion request bodies (OpenAI fields).
// Every failure is a 400 naming the field; nothing here throws (the JSON is
// parsed with exceptions off and every access is type-checked first).
#include <cmath>
#include <limits>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runtime/grammar/openai_format.h"
#include "runtime/server/api.h"

namespace tandem::server {

using json = nlohmann::json;

std::string ApiError::to_json() const {
  json e = {{"message", message}, {"type", type}, {"code", code.empty() ? json(nullptr) : json(code)},
            {"param", param.empty() ? json(nullptr) : json(param)}};
  return json{{"error", e}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

ApiError invalid_request(std::string message, std::string code, std::string param) {
  ApiError e;
  e.status = 400;
  e.message = std::move(message);
  e.code = std::move(code);
  e.param = std::move(param);
  return e;
}

HttpResponse HttpResponse::json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::error(const ApiError& e) { return json(e.status, e.to_json()); }

namespace {

const char* type_name(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "integer";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  return "object";
}

ApiError wrong_type(const std::string& field, const char* want, const json& got) {
  return invalid_request(fmt::format("'{}' must be {}, got {}", field, want, type_name(got)), "invalid_type",
                         field);
}

ApiError out_of_range(const std::string& field, const std::string& what) {
  return invalid_request(fmt::format("'{}' {}", field, what), "invalid_value", field);
}

// Small helpers: each returns an error or fills `out` (absent / null fields keep the default).
std::optional<ApiError> get_number(const json& body, const char* key, double lo, double hi, float& out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) return wrong_type(key, "a number", *it);
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    return out_of_range(key, fmt::format("must be in [{}, {}], got {}", lo, hi, v));
  out = static_cast<float>(v);
  return std::nullopt;
}

std::optional<ApiError> get_int(const json& body, const char* key, int64_t lo, int64_t hi, int64_t& out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (it->is_number_float()) {
    const double d = it->get<double>();
    if (!std::isfinite(d) || d != std::floor(d)) return wrong_type(key, "an integer", *it);
    if (d < static_cast<double>(lo) || d > static_cast<double>(hi))
      return out_of_range(key, fmt::format("must be in [{}, {}], got {}", lo, hi, d));
    out = static_cast<int64_t>(d);
    return std::nullopt;
  }
  if (it->is_number_unsigned()) {
    const uint64_t u = it->get<uint64_t>();
    if (u > static_cast<uint64_t>(hi) || (lo > 0 && u < static_cast<uint64_t>(lo))) return out_of_range(key, fmt::format("must be in [{}, {}], got {}", lo, hi, u));
    out = static_cast<int64_t>(u);
    return std::nullopt;
  }
  if (!it->is_number_integer()) return wrong_type(key, "an integer", *it);
  const int64_t v = it->get<int64_t>();
  if (v < lo || v > hi) return out_of_range(key, fmt::format("must be in [{}, {}], got {}", lo, hi, v));
  out = v;
  return std::nullopt;
}

std::optional<ApiError> get_bool(const json& body, const char* key, bool& out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return wrong_type(key, "a boolean", *it);
  out = it->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> parse_prompt(const json& body, const RequestLimits& lim, CompletionRequest& r) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) return invalid_request("'prompt' is required", "missing_field", "prompt");
  if (it->is_string()) {
    r.prompt = it->get<std::string>();
    return std::nullopt;
  }
  if (!it->is_array()) return wrong_type("prompt", "a string, an array of one string or an array of token ids", *it);
  if (it->empty()) return out_of_range("prompt", "must not be an empty array");
  if ((*it)[0].is_string()) {
    if (it->size() != 1)
      return invalid_request("'prompt' with several strings is not supported; send one request per prompt",
                             "unsupported_value", "prompt");
    r.prompt = (*it)[0].get<std::string>();
    return std::nullopt;
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const json& t = (*it)[i];
    if (!t.is_number_integer() && !t.is_number_unsigned())
      return wrong_type(fmt::format("prompt[{}]", i), "a token id (integer)", t);
    const int64_t id = t.get<int64_t>();
    if (id < 0 || id >= lim.n_vocab)
      return out_of_range(fmt::format("prompt[{}]", i), fmt::format("token id {} outside the vocabulary [0, {})", id,
                                                                    lim.n_vocab));
    r.prompt_tokens.push_back(static_cast<int32_t>(id));
  }
  r.prompt_is_tokens = true;
  return std::nullopt;
}

std::optional<ApiError> parse_messages(const json& body, CompletionRequest& r) {
  auto it = body.find("messages");
  if (it == body.end() || it->is_null())
    return invalid_request("'messages' is required", "missing_field", "messages");
  if (!it->is_array()) return wrong_type("messages", "an array", *it);
  if (it->empty()) return out_of_range("messages", "must hold at least one message");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) return wrong_type(where, "an object", m);
    auto role = m.find("role");
    if (role == m.end()) return invalid_request(fmt::format("'{}.role' is required", where), "missing_field", where + ".role");
    if (!role->is_string()) return wrong_type(where + ".role", "a string", *role);
    const std::string rs = role->get<std::string>();
    if (rs != "system" && rs != "user" && rs != "assistant" && rs != "developer" && rs != "tool")
      return out_of_range(where + ".role", fmt::format("'{}' is not one of system, developer, user, assistant, tool", rs));
    ChatMessage cm;
    cm.role = rs;
    cm.raw = m.dump();  // tool_calls / tool_call_id for the tool-aware rendering
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      if (rs != "assistant")
        return invalid_request(fmt::format("'{}.content' is required", where), "missing_field", where + ".content");
    } else if (content->is_string()) {
      cm.content = content->get<std::string>();
    } else if (content->is_array()) {
      // Content parts: only text parts can be rendered by a text model.
      for (size_t k = 0; k < content->size(); ++k) {
        const json& part = (*content)[k];
        const std::string pw = fmt::format("{}.content[{}]", where, k);
        if (!part.is_object()) return wrong_type(pw, "an object", part);
        auto type = part.find("type");
        auto text = part.find("text");
        if (type == part.end() || !type->is_string() || type->get<std::string>() != "text")
          return invalid_request(fmt::format("'{}' must be a part of type \"text\"", pw), "unsupported_value", pw);
        if (text == part.end() || !text->is_string()) return invalid_request(fmt::format("'{}.text' must be a string", pw), "invalid_type", pw + ".text");
        cm.content += text->get<std::string>();
      }
    } else {
      return wrong_type(where + ".content", "a string or an array of text parts", *content);
    }
    r.messages.push_back(std::move(cm));
  }
  return std::nullopt;
}

std::optional<ApiError> parse_stop(const json& body, const RequestLimits& lim, CompletionRequest& r) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) {
    if (it->get<std::string>().empty()) return out_of_range("stop", "must not be an empty string");
    r.stop.push_back(it->get<std::string>());
    return std::nullopt;
  }
  if (!it->is_array()) return wrong_type("stop", "a string or an array of strings", *it);
  if (static_cast<int>(it->size()) > lim.max_stop)
    return out_of_range("stop", fmt::format("holds {} strings, at most {} are allowed", it->size(), lim.max_stop));
  for (size_t i = 0; i < it->size(); ++i) {
    const json& s = (*it)[i];
    if (!s.is_string()) return wrong_type(fmt::format("stop[{}]", i), "a string", s);
    if (s.get<std::string>().empty()) return out_of_range(fmt::format("stop[{}]", i), "must not be empty");
    r.stop.push_back(s.get<std::string>());
  }
  return std::nullopt;
}

std::optional<ApiError> parse_logit_bias(const json& body, const RequestLimits& lim, CompletionRequest& r) {
  auto it = body.find("logit_bias");
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_object()) return wrong_type("logit_bias", "an object mapping token ids to numbers", *it);
  for (const auto& [k, v] : it->items()) {
    int64_t id = -1;
    bool digits = !k.empty() && k.size() <= 9;
    for (char c : k) digits = digits && c >= '0' && c <= '9';
    if (digits) id = std::stoll(k);
    if (id < 0 || id >= lim.n_vocab)
      return out_of_range("logit_bias", fmt::format("key '{}' is not a token id in [0, {})", k, lim.n_vocab));
    if (!v.is_number()) return wrong_type(fmt::format("logit_bias[{}]", k), "a number", v);
    const double b = v.get<double>();
    if (!std::isfinite(b) || b < -100 || b > 100)
      return out_of_range(fmt::format("logit_bias[{}]", k), "must be in [-100, 100]");
    // -100 bans the token outright (OpenAI: "should result in a ban").
    r.sampling.logit_bias.emplace_back(static_cast<int32_t>(id),
                                       b <= -100 ? -std::numeric_limits<float>::infinity() : static_cast<float>(b));
  }
  return std::nullopt;
}

}  // namespace

std::variant<CompletionRequest, ApiError> parse_completion_request(std::string_view text, bool chat,
                                                                   const RequestLimits& lim) {
  json body = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return invalid_request("the request body is not valid JSON", "invalid_json");
  if (!body.is_object()) return invalid_request("the request body must be a JSON object", "invalid_json");

  CompletionRequest r;
  r.chat = chat;
  // OpenAI defaults: no truncation of the distribution, temperature 1.
  r.sampling.temperature = 1.0f;
  r.sampling.top_k = 0;
  r.sampling.top_p = 1.0f;
  r.sampling.min_p = 0.0f;
  r.sampling.penalty_last_n = -1;

  if (auto it = body.find("model"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return wrong_type("model", "a string", *it);
    r.model = it->get<std::string>();
  }
  if (chat) {
    if (auto e = parse_messages(body, r)) return *e;
  } else {
    if (auto e = parse_prompt(body, lim, r)) return *e;
  }

  int64_t v = 0;
  const char* max_key = chat && body.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  v = chat ? -1 : 16;  // OpenAI: completions default to 16 tokens, chat to the rest of the context
  if (auto e = get_int(body, max_key, 1, std::numeric_limits<int32_t>::max(), v)) return *e;
  r.max_tokens = static_cast<int>(v);

  if (auto e = get_number(body, "temperature", 0.0, 2.0, r.sampling.temperature)) return *e;
  if (auto e = get_number(body, "top_p", 0.0, 1.0, r.sampling.top_p)) return *e;
  if (body.contains("top_p") && body["top_p"].is_number() && r.sampling.top_p <= 0.0f)
    return out_of_range("top_p", "must be greater than 0");
  v = 0;
  if (auto e = get_int(body, "top_k", 0, std::numeric_limits<int32_t>::max(), v)) return *e;
  r.sampling.top_k = static_cast<int>(v);
  if (auto e = get_number(body, "min_p", 0.0, 1.0, r.sampling.min_p)) return *e;
  if (auto e = get_number(body, "presence_penalty", -2.0, 2.0, r.sampling.presence_penalty)) return *e;
  if (auto e = get_number(body, "frequency_penalty", -2.0, 2.0, r.sampling.frequency_penalty)) return *e;
  float rp = 1.0f;
  if (auto e = get_number(body, "repeat_penalty", 0.0, 10.0, rp)) return *e;
  if (rp <= 0.0f) return out_of_range("repeat_penalty", "must be greater than 0");
  r.sampling.repeat_penalty = rp;

  if (auto it = body.find("seed"); it != body.end() && !it->is_null()) {
    if (auto e = get_int(body, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), v))
      return *e;
    r.sampling.seed = static_cast<uint32_t>(static_cast<uint64_t>(v));
    r.seed_given = true;
  }

  v = 1;
  if (auto e = get_int(body, "n", 1, lim.max_n, v)) return *e;
  r.n = static_cast<int>(v);
  if (auto e = parse_stop(body, lim, r)) return *e;
  if (auto e = parse_logit_bias(body, lim, r)) return *e;
  if (auto e = get_bool(body, "stream", r.stream)) return *e;
  if (auto it = body.find("stream_options"); it != body.end() && !it->is_null() && !it->is_object())
    return wrong_type("stream_options", "an object", *it);

  if (chat) {
    bool lp = false;
    if (auto e = get_bool(body, "logprobs", lp)) return *e;
    v = 0;
    if (auto e = get_int(body, "top_logprobs", 0, 20, v)) return *e;
    if (body.contains("top_logprobs") && !body["top_logprobs"].is_null() && !lp)
      return invalid_request("'top_logprobs' needs 'logprobs': true", "invalid_value", "top_logprobs");
    r.logprobs = lp ? static_cast<int>(v) : -1;
  } else {
    v = -1;
    if (auto it = body.find("logprobs"); it != body.end() && it->is_boolean())
      return wrong_type("logprobs", "an integer (0..5 alternatives per token)", *it);
    if (auto e = get_int(body, "logprobs", 0, 5, v)) return *e;
    r.logprobs = static_cast<int>(v);
  }
  // response_format, tools, tool_choice (runtime/grammar/openai_format.h).
  if (auto e = parse_structured_output(text, chat, r)) return *e;
  return r;
}

}  // namespace tandem::server
