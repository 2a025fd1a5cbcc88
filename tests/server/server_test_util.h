#pragma once
// Helpers of the server tests: JSON requests over httplib, SSE parsing, and
// an independent greedy reference computed in-process with the public API
// (one sequence, plain argmax, no server code involved).
#include <httplib.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tandem/tandem.h"

namespace tandem::test {

using json = nlohmann::json;

inline std::string bundled_model() { return std::string(TANDEM_SOURCE_DIR) + "/models/tiny-hybrid-stories.gguf"; }
inline std::string fixture_model(const char* name) { return std::string(TANDEM_FIXTURES) + "/models/" + name; }

struct JsonReply {
  int status = 0;  // 0: no response (connection failed)
  json body;
  std::string raw;
  httplib::Headers headers;
};

inline JsonReply post_json(int port, const std::string& path, const std::string& body,
                           const std::string& api_key = "") {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(60, 0);
  httplib::Headers h;
  if (!api_key.empty()) h.emplace("Authorization", "Bearer " + api_key);
  auto r = cli.Post(path, h, body, "application/json");
  JsonReply out;
  if (!r) return out;
  out.status = r->status;
  out.raw = r->body;
  out.headers = r->headers;
  out.body = json::parse(r->body, nullptr, false);
  return out;
}

inline JsonReply post_json(int port, const std::string& path, const json& body, const std::string& api_key = "") {
  return post_json(port, path, body.dump(), api_key);
}

inline JsonReply get_json(int port, const std::string& path, const std::string& api_key = "") {
  httplib::Client cli("127.0.0.1", port);
  httplib::Headers h;
  if (!api_key.empty()) h.emplace("Authorization", "Bearer " + api_key);
  auto r = cli.Get(path, h);
  JsonReply out;
  if (!r) return out;
  out.status = r->status;
  out.raw = r->body;
  out.headers = r->headers;
  out.body = json::parse(r->body, nullptr, false);
  return out;
}

// The value of an unlabelled Prometheus sample ("name value"); -1 when absent.
inline double metric(const std::string& text, const std::string& name) {
  size_t at = 0;
  while ((at = text.find(name + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + name.size() + 1));
    at += name.size();
  }
  return -1;
}

// The /metrics text, the GET retried while it fails: on a starved machine a
// request can miss httplib's default timeouts, and a missing metric would read
// as -1. "" when the server has not answered for 30 s. (A test that asserts
// /metrics answers promptly calls get_json itself.)
inline std::string metrics_text(int port) {
  for (int i = 0; i < 300; ++i) {
    const JsonReply r = get_json(port, "/metrics");
    if (r.status == 200) return r.raw;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return "";
}

// A streaming POST: every `data:` payload in order. `stop_after` > 0 aborts
// the connection after that many events (a client that goes away).
struct SseResult {
  int status = 0;
  std::vector<std::string> events;  // payloads, "[DONE]" included
};
inline SseResult post_sse(int port, const std::string& path, const json& body, int stop_after = 0) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(60, 0);
  SseResult out;
  std::string buf;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.response_handler = [&](const httplib::Response& r) {
    out.status = r.status;
    return true;
  };
  req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
    buf.append(d, n);
    size_t end;
    while ((end = buf.find("\n\n")) != std::string::npos) {
      std::string ev = buf.substr(0, end);
      buf.erase(0, end + 2);
      if (ev.rfind("data: ", 0) == 0) out.events.push_back(ev.substr(6));
    }
    return stop_after <= 0 || static_cast<int>(out.events.size()) < stop_after;
  };
  auto r = cli.send(req);
  if (r && out.status == 0) out.status = r->status;
  return out;
}

// Greedy continuation of `prompt` computed directly with the public API.
struct Reference {
  std::vector<int32_t> prompt;
  std::vector<int32_t> tokens;       // generated (EOG excluded)
  std::vector<float> logprobs;       // log-softmax of each chosen token
  std::string text;                  // TextStream of the tokens
  bool hit_eog = false;
};

inline Reference greedy_reference(const Model& m, const std::vector<int32_t>& prompt, int max_tokens,
                                  bool strip_leading_space = false, int n_ctx = 0) {
  Reference ref;
  ref.prompt = prompt;
  ContextOptions co;
  co.n_ctx = n_ctx > 0 ? n_ctx : static_cast<int>(prompt.size()) + max_tokens + 8;
  co.n_seq_max = 1;
  co.n_threads = 1;
  auto ctx = Context::create(m, co);
  if (!ctx) return ref;
  Batch b;
  for (size_t i = 0; i < prompt.size(); ++i) b.add(prompt[i], static_cast<int>(i), {0}, i + 1 == prompt.size());
  if (!(*ctx)->decode(b)) return ref;
  TextStream ts(m, strip_leading_space);
  int pos = static_cast<int>(prompt.size());
  for (int g = 0; g < max_tokens; ++g) {
    const float* l = (*ctx)->logits(0);
    const int nv = m.n_vocab();
    int best = 0;
    for (int i = 1; i < nv; ++i)
      if (l[i] > l[best]) best = i;
    double mx = l[best], sum = 0;
    for (int i = 0; i < nv; ++i) sum += std::exp(double(l[i]) - mx);
    if (m.is_eog(best)) {
      ref.hit_eog = true;
      break;
    }
    ref.tokens.push_back(best);
    ref.logprobs.push_back(static_cast<float>(double(l[best]) - mx - std::log(sum)));
    ref.text += ts.push(best);
    if (g + 1 == max_tokens) break;
    b.clear();
    b.add(best, pos++, {0}, true);
    if (!(*ctx)->decode(b)) break;
  }
  ref.text += ts.flush();
  return ref;
}

}  // namespace tandem::test
