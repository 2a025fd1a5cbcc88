// Response bodies and the SSE stream (see responses.h).
#include "runtime/server/responses.h"

#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runtime/grammar/openai_format.h"

namespace tandem::server {

using json = nlohmann::json;

std::string dump_response(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

namespace {

json bytes_of(const std::string& s) {
  json a = json::array();
  for (unsigned char c : s) a.push_back(static_cast<int>(c));
  return a;
}

// prompt_tokens_details.cached_tokens: prompt tokens restored from the prefix
// cache instead of being processed (as OpenAI reports its prompt caching).
json usage_json(int p, int c, int cached) {
  return {{"prompt_tokens", p}, {"completion_tokens", c}, {"total_tokens", p + c},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

// completions: {tokens, token_logprobs, top_logprobs, text_offset};
// chat: {content: [{token, logprob, bytes, top_logprobs: [...]}]}.
json logprobs_json(const ResponseMeta& m, const std::vector<TokenLogprob>& lps, const Model& model, size_t offset0) {
  if (m.chat) {
    json content = json::array();
    for (const auto& t : lps) {
      json top = json::array();
      for (const auto& [id, lp] : t.top) {
        const std::string piece = model.token_to_piece(id);
        top.push_back({{"token", piece}, {"logprob", lp}, {"bytes", bytes_of(piece)}});
      }
      content.push_back({{"token", t.piece}, {"logprob", t.logprob}, {"bytes", bytes_of(t.piece)}, {"top_logprobs", top}});
    }
    return {{"content", content}};
  }
  json tokens = json::array(), token_lps = json::array(), tops = json::array(), offsets = json::array();
  size_t off = offset0;
  for (const auto& t : lps) {
    tokens.push_back(t.piece);
    token_lps.push_back(t.logprob);
    json top = json::object();
    for (const auto& [id, lp] : t.top) top[model.token_to_piece(id)] = lp;
    tops.push_back(top);
    offsets.push_back(off);
    off += t.piece.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", token_lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json header(const ResponseMeta& m, bool chunk) {
  const char* object = m.chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return {{"id", m.id}, {"object", object}, {"created", m.created}, {"model", m.model}};
}

class SseStream final : public EventSource {
 public:
  SseStream(std::shared_ptr<Ticket> t, ResponseMeta m, const Model& model)
      : ticket_(std::move(t)), meta_(std::move(m)), model_(model), offsets_(static_cast<size_t>(meta_.n), 0) {}
  ~SseStream() override {
    if (!finished_) ticket_->cancel();
  }

  Pull next(std::string& out, std::chrono::milliseconds wait) override {
    if (finished_) return Pull::kDone;
    out.clear();
    if (meta_.chat && !sent_role_) {
      // The first chunk of each chat choice carries the role.
      sent_role_ = true;
      for (int i = 0; i < meta_.n; ++i) {
        json c = header(meta_, true);
        c["choices"] = json::array({{{"index", i}, {"delta", {{"role", "assistant"}, {"content", ""}}},
                                     {"logprobs", nullptr}, {"finish_reason", nullptr}}});
        out += "data: " + dump_response(c) + "\n\n";
      }
      return Pull::kData;
    }
    Update u;
    if (!ticket_->pop(u, wait)) return Pull::kIdle;
    if (u.error) {
      out += "data: " + u.error->to_json() + "\n\n";
      out += "data: [DONE]\n\n";
      finished_ = true;
      return Pull::kData;
    }
    for (const auto& cu_in : u.choices) {
      ChoiceUpdate cu = cu_in;
      if (meta_.chat && !meta_.tool_names.empty()) hold_for_tools(cu, out);
      if (cu.text.empty() && cu.finish_reason.empty() && cu.logprobs.empty()) continue;
      json choice = {{"index", cu.index}};
      if (meta_.chat) {
        json delta = json::object();
        if (!cu.text.empty()) delta["content"] = cu.text;
        choice["delta"] = delta;
      } else {
        choice["text"] = cu.text;
      }
      const size_t idx = static_cast<size_t>(cu.index);
      choice["logprobs"] = meta_.logprobs >= 0 ? logprobs_json(meta_, cu.logprobs, model_, offsets_[idx]) : json(nullptr);
      if (idx < offsets_.size())
        for (const auto& t : cu.logprobs) offsets_[idx] += t.piece.size();
      choice["finish_reason"] = cu.finish_reason.empty() ? json(nullptr) : json(cu.finish_reason);
      json c = header(meta_, true);
      c["choices"] = json::array({choice});
      out += "data: " + dump_response(c) + "\n\n";
    }
    if (u.done) {
      // Usage in a last chunk with no choices (as OpenAI's include_usage does).
      json c = header(meta_, true);
      c["choices"] = json::array();
      c["usage"] = usage_json(u.prompt_tokens, u.completion_tokens, u.cached_tokens);
      out += "data: " + dump_response(c) + "\n\n";
      out += "data: [DONE]\n\n";
      finished_ = true;
    }
    return out.empty() ? Pull::kIdle : Pull::kData;
  }

  void cancel() override {
    finished_ = true;
    ticket_->cancel();
  }

 private:
  std::shared_ptr<Ticket> ticket_;
  ResponseMeta meta_;
  const Model& model_;
  // Chat with tools: the text of each choice is held back until it ends, then
  // sent as a tool_calls delta (finish_reason "tool_calls") or as content.
  void hold_for_tools(ChoiceUpdate& cu, std::string& out) {
    const size_t i = static_cast<size_t>(cu.index);
    if (held_.size() <= i) held_.resize(i + 1);
    held_[i] += cu.text;
    cu.text.clear();
    if (cu.finish_reason.empty()) return;
    ToolOutput t = parse_tool_calls(held_[i], meta_.tool_names);
    if (t.calls.empty()) {
      cu.text = std::move(held_[i]);
      return;
    }
    json delta = {{"tool_calls", tool_calls_json(t.calls, /*with_index=*/true)}};
    if (!t.content.empty()) delta["content"] = t.content;
    json c = header(meta_, true);
    c["choices"] = json::array({{{"index", cu.index}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", nullptr}}});
    out += "data: " + dump_response(c) + "\n\n";
    cu.finish_reason = "tool_calls";
  }

  std::vector<size_t> offsets_;
  std::vector<std::string> held_;
  bool sent_role_ = false;
  bool finished_ = false;
};

}  // namespace

std::string format_final(const ResponseMeta& m, const std::vector<ChoiceResult>& choices, int prompt_tokens,
                         int completion_tokens, const Model& model, int cached_tokens) {
  json r = header(m, false);
  json arr = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const auto& c = choices[i];
    json choice = {{"index", i}};
    if (m.chat && !c.tool_calls.empty())
      choice["message"] = {{"role", "assistant"}, {"content", c.text.empty() ? json(nullptr) : json(c.text)},
                           {"tool_calls", json::parse(c.tool_calls)}};
    else if (m.chat)
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    else
      choice["text"] = c.text;
    choice["logprobs"] = m.logprobs >= 0 ? logprobs_json(m, c.logprobs, model, 0) : json(nullptr);
    choice["finish_reason"] = c.finish_reason.empty() ? json(nullptr) : json(c.finish_reason);
    arr.push_back(std::move(choice));
  }
  r["choices"] = arr;
  r["usage"] = usage_json(prompt_tokens, completion_tokens, cached_tokens);
  return dump_response(r);
}

std::shared_ptr<EventSource> make_event_stream(std::shared_ptr<Ticket> ticket, ResponseMeta meta, const Model& model) {
  return std::make_shared<SseStream>(std::move(ticket), std::move(meta), model);
}

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}{:016x}", prefix, rng());
}

}  // namespace tandem::server
