// Routing, authentication and the endpoint handlers of `tandem serve`.
#include "runtime/server/service.h"

#include <chrono>
#include <filesystem>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runtime/grammar/load.h"
#include "runtime/grammar/openai_format.h"
#include "runtime/server/chat_prompt.h"
#include "runtime/server/responses.h"
#include "runtime/server/text.h"

namespace tandem::server {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

ApiError not_ready() { return {503, "the model is still loading", "server_error", "loading", ""}; }

}  // namespace

Service::Service(ServerOptions opts) : opts_(std::move(opts)) {
  model_id_ = opts_.model_id;
  if (model_id_.empty()) model_id_ = std::filesystem::path(opts_.model_path).stem().string();
  created_ = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Service::~Service() { shutdown(); }

void Service::shutdown() {
  stopping_.store(true);
  ready_.store(false);
  if (sched_) sched_->stop();
}

Outcome Service::load() {
  if (opts_.parallel < 1) return Outcome(Errc::kInvalidArgument, fmt::format("--parallel {} < 1", opts_.parallel));
  if (opts_.queue < 0) return Outcome(Errc::kInvalidArgument, fmt::format("--queue {} < 0", opts_.queue));
  ModelOptions mo;
  mo.weights = opts_.weights;
  auto m = Model::load(opts_.model_path, mo);
  if (!m) return m.outcome();
  model_ = std::move(m).value();
  ctx_per_seq_ = opts_.ctx > 0 ? opts_.ctx : (model_->n_ctx_train() > 0 ? model_->n_ctx_train() : 2048);
  ContextOptions co;
  // Every sequence may fill its whole window; forked choices share their prompt cells.
  co.n_ctx = ctx_per_seq_ * opts_.parallel;
  co.n_seq_max = opts_.parallel;
  co.n_ubatch = std::max(32, std::min(opts_.batch, 512));
  co.n_threads = opts_.threads;
  co.state_type = opts_.state_type;
  PrefixCache::Options pco;
  if (opts_.cache_mem > 0 && opts_.cache_snapshots > 0) {
    // The sizes of one recurrent state and one attention cell, from a
    // one-cell probe context, size the snapshot pool and the extra cells the
    // cache may pin (allocated up front, on top of the sequences' windows).
    ContextOptions probe = co;
    probe.n_ctx = 1;
    probe.n_seq_max = 1;
    probe.n_ubatch = 1;
    auto p = Context::create(*model_, probe);
    if (!p) return p.outcome();
    const size_t state = (*p)->state_bytes(), cell = (*p)->cell_bytes();
    pco.max_bytes = opts_.cache_mem;
    pco.max_snapshots = opts_.cache_snapshots;
    if (state > 0) pco.max_snapshots = static_cast<int>(std::min<size_t>(pco.max_snapshots, opts_.cache_mem / state));
    if (cell > 0)
      pco.max_cells = static_cast<int>(std::min<size_t>(opts_.cache_mem / cell, size_t(ctx_per_seq_) * opts_.parallel));
    if (pco.max_snapshots > 0) {
      co.snapshot_slots = pco.max_snapshots;
      co.n_ctx += pco.max_cells;
    }
  }
  auto c = Context::create(*model_, co);
  if (!c) return c.outcome();
  ctx_ = std::move(c).value();
  if (co.snapshot_slots > 0) cache_ = std::make_unique<PrefixCache>(*ctx_, pco);
  Scheduler::Options so;
  so.parallel = opts_.parallel;
  so.ctx_per_seq = ctx_per_seq_;
  so.queue = opts_.queue;
  so.batch = opts_.batch;
  so.snapshot_every = opts_.snapshot_every;
  sched_ = std::make_unique<Scheduler>(*ctx_, so, metrics_, cache_.get());
  ready_.store(true);
  return Outcome();
}

namespace {

// The OpenAI-style error for a status the transport produced (not counted).
ApiError transport_api_error(int status) {
  ApiError e;
  e.status = status;
  switch (status) {
    case 413: e.message = fmt::format("the request body exceeds the server's limit"); e.code = "request_too_large"; break;
    case 404: e.message = "no such endpoint"; e.type = "not_found_error"; e.code = "not_found"; break;
    case 405: e.message = "method not allowed"; e.code = "method_not_allowed"; break;
    case 408: e.message = "the request was not received in time"; e.type = "timeout_error"; e.code = "request_timeout"; break;
    default: e.message = fmt::format("HTTP error {}", status); e.type = status >= 500 ? "server_error" : "invalid_request_error"; break;
  }
  return e;
}

}  // namespace

HttpResponse Service::transport_error(int status) {
  metrics_.count_status(status);
  return HttpResponse::error(transport_api_error(status));
}

HttpResponse Service::overloaded() {
  ApiError e{503, "the server is overloaded (every connection worker is busy); retry later", "server_error",
             "server_overloaded", ""};
  metrics_.count_status(503);
  metrics_.overload_rejected.fetch_add(1);
  HttpResponse r = HttpResponse::error(e);
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

HttpResponse Service::handle(const HttpRequest& req) {
  HttpResponse r = route(req);
  metrics_.count_status(r.status);
  return r;
}

HttpResponse Service::route(const HttpRequest& req) {
  if (req.path == "/health") {
    if (req.method != "GET") return HttpResponse::error(transport_api_error(405));  // (handle() counts it)
    if (ready()) return HttpResponse::json(200, R"({"status":"ok"})");
    return HttpResponse::json(503, stopping_.load() ? R"({"status":"shutting_down"})" : R"({"status":"loading"})");
  }
  if (!opts_.api_key.empty()) {
    // Constant-time comparison; the key is never logged or echoed.
    const std::string_view auth = req.authorization;
    constexpr std::string_view kBearer = "Bearer ";
    const bool ok = auth.size() > kBearer.size() && auth.substr(0, kBearer.size()) == kBearer &&
                    secure_equal(auth.substr(kBearer.size()), opts_.api_key);
    if (!ok) {
      HttpResponse r = HttpResponse::error(
          {401, "missing or invalid API key (send 'Authorization: Bearer KEY')", "authentication_error", "invalid_api_key", ""});
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return r;
    }
  }
  struct Route {
    const char* method;
    const char* path;
  };
  const bool known = req.path == "/v1/completions" || req.path == "/v1/chat/completions" || req.path == "/v1/models" ||
                     req.path == "/metrics" || req.path == "/tokenize" || req.path == "/detokenize";
  if (!known) {
    ApiError e{404, fmt::format("no endpoint {} {}", req.method, req.path), "not_found_error", "not_found", ""};
    return HttpResponse::error(e);
  }
  const bool get = req.path == "/v1/models" || req.path == "/metrics";
  if (req.method != (get ? "GET" : "POST")) {
    HttpResponse r = HttpResponse::error({405, fmt::format("{} expects {}", req.path, get ? "GET" : "POST"),
                                          "invalid_request_error", "method_not_allowed", ""});
    r.headers.emplace_back("Allow", get ? "GET" : "POST");
    return r;
  }
  if (!ready()) {
    if (!stopping_.load()) return HttpResponse::error(not_ready());
    HttpResponse r = HttpResponse::error({503, "the server is shutting down", "server_error", "shutting_down", ""});
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  if (req.path == "/v1/completions") return completions(req, false);
  if (req.path == "/v1/chat/completions") return completions(req, true);
  if (req.path == "/v1/models") return models();
  if (req.path == "/metrics") return metrics_text();
  if (req.path == "/tokenize") return tokenize(req);
  return detokenize(req);
}

HttpResponse Service::completions(const HttpRequest& req, bool chat) {
  RequestLimits lim;
  lim.max_n = opts_.parallel;
  lim.n_vocab = model_->n_vocab();
  auto parsed = parse_completion_request(req.body, chat, lim);
  if (auto* e = std::get_if<ApiError>(&parsed)) return HttpResponse::error(*e);
  CompletionRequest& r = std::get<CompletionRequest>(parsed);
  const std::string file_name = std::filesystem::path(opts_.model_path).filename().string();
  if (!r.model.empty() && r.model != model_id_ && r.model != file_name)
    return HttpResponse::error({404, fmt::format("the model '{}' does not exist; this server serves '{}'", r.model, model_id_),
                                "invalid_request_error", "model_not_found", "model"});

  Job job;
  if (chat && needs_tool_rendering(r)) {
    // Tools offered, tool calls or tool results in the conversation: the
    // template renders them (runtime/tool_calls.h); no prefix-cache points.
    const auto tools = r.tools_json.empty() ? nlohmann::ordered_json::array() : nlohmann::ordered_json::parse(r.tools_json);
    job.prompt = tokenize_chat_text(*model_, render_chat_with_tools(*model_, messages_json(r), tools, true));
    job.strip_leading_space = true;
  } else if (chat) {
    // The model's chat template (plain "role: content" lines without one);
    // message ends are prefix-cache snapshot points.
    ChatPrompt cp = build_chat_prompt(*model_, r.messages, /*want_boundaries=*/cache_ != nullptr);
    job.prompt = std::move(cp.tokens);
    job.snapshot_points = std::move(cp.boundaries);
    if (cache_ && r.n == 1) {
      // The next turn starts with this conversation plus the reply, as the
      // template renders it: the scheduler encodes that after answering.
      job.next_turn = [model = model_.get(), msgs = r.messages](const std::string& reply) {
        std::vector<ChatMessage> m = msgs;
        m.push_back({"assistant", reply});
        return chat_tokens(*model, m, /*add_generation_prompt=*/false);
      };
    }
    job.strip_leading_space = true;
  } else if (r.prompt_is_tokens) {
    job.prompt = r.prompt_tokens;
  } else {
    job.prompt = model_->tokenize(r.prompt, /*add_special=*/true, /*parse_special=*/false);
  }
  if (job.prompt.empty())
    return HttpResponse::error(invalid_request("the prompt is empty (and the model adds no BOS token)", "invalid_value",
                                               chat ? "messages" : "prompt"));
  job.sampling = r.sampling;
  if (!r.seed_given) job.sampling.seed = std::random_device{}();
  job.n = r.n;
  job.max_tokens = r.max_tokens;
  job.stop = r.stop;
  job.logprobs = r.logprobs;
  if (!r.grammar.empty()) {
    // response_format / a required tool call: grammar-constrained sampling (runtime/grammar/).
    auto c = grammar::constraint_from_gbnf(*model_, r.grammar, "response_format");
    if (!c.is_ok()) return HttpResponse::error(invalid_request(c.status().message(), "invalid_value", "response_format"));
    job.sampling.constraint = *c;
  }
  job.deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(opts_.timeout_s * 1000.0));
  const int prompt_tokens = static_cast<int>(job.prompt.size());

  auto sub = sched_->submit(std::move(job));
  if (auto* e = std::get_if<ApiError>(&sub)) {
    HttpResponse resp = HttpResponse::error(*e);
    if (e->status == 503) resp.headers.emplace_back("Retry-After", "1");
    return resp;
  }
  auto ticket = std::get<std::shared_ptr<Ticket>>(sub);

  ResponseMeta meta;
  meta.id = random_id(chat ? "chatcmpl-" : "cmpl-");
  meta.model = model_id_;
  meta.created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  meta.chat = chat;
  meta.logprobs = r.logprobs;
  meta.n = r.n;
  if (chat && !r.tools_json.empty() && r.tool_choice != "none")
    meta.tool_names = tool_names(nlohmann::ordered_json::parse(r.tools_json));

  if (r.stream) {
    HttpResponse resp;
    resp.content_type = "text/event-stream";
    resp.headers.emplace_back("Cache-Control", "no-cache");
    resp.stream = make_event_stream(std::move(ticket), meta, *model_);
    return resp;
  }

  // Non-streaming: collect every update until the request is done (the
  // scheduler enforces the time limit, so this wait ends).
  std::vector<ChoiceResult> choices(static_cast<size_t>(r.n));
  int completion_tokens = 0, cached_tokens = 0;
  auto next_check = Clock::now();
  for (;;) {
    if (req.client_gone && Clock::now() >= next_check) {
      // Every 100 ms (updates arrive every decode step, so not only when idle).
      next_check = Clock::now() + std::chrono::milliseconds(100);
      if (req.client_gone()) {
        // Nobody will read the answer: stop generating and free the
        // sequence(s). 499 (nginx's "client closed request") only shows in
        // /metrics; the write of this response fails.
        ticket->cancel();
        return HttpResponse::error({499, "the client closed the connection before the answer was ready", "server_error",
                                    "client_disconnected", ""});
      }
    }
    Update u;
    if (!ticket->pop(u, std::chrono::milliseconds(100))) continue;
    if (u.error) return HttpResponse::error(*u.error);
    for (auto& cu : u.choices) {
      auto& c = choices.at(static_cast<size_t>(cu.index));
      c.text += cu.text;
      for (auto& lp : cu.logprobs) c.logprobs.push_back(std::move(lp));
      if (!cu.finish_reason.empty()) c.finish_reason = cu.finish_reason;
    }
    completion_tokens = u.completion_tokens;
    cached_tokens = u.cached_tokens;
    if (u.done) break;
  }
  if (!meta.tool_names.empty())
    for (auto& c : choices) {
      // Tool calls in the output become message.tool_calls (finish_reason "tool_calls").
      ToolOutput t = parse_tool_calls(c.text, meta.tool_names);
      if (t.calls.empty()) continue;
      c.text = t.content;
      c.tool_calls = tool_calls_json(t.calls, /*with_index=*/false).dump();
      c.finish_reason = "tool_calls";
    }
  return HttpResponse::json(200, format_final(meta, choices, prompt_tokens, completion_tokens, *model_, cached_tokens));
}

HttpResponse Service::tokenize(const HttpRequest& req) {
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object())
    return HttpResponse::error(invalid_request("the request body is not a JSON object", "invalid_json"));
  auto it = body.find("content");
  if (it == body.end()) return HttpResponse::error(invalid_request("'content' is required", "missing_field", "content"));
  if (!it->is_string()) return HttpResponse::error(invalid_request("'content' must be a string", "invalid_type", "content"));
  bool add_special = true, parse_special = false, with_pieces = false;
  for (auto [key, dst] : {std::pair{"add_special", &add_special}, std::pair{"parse_special", &parse_special},
                          std::pair{"with_pieces", &with_pieces}}) {
    auto f = body.find(key);
    if (f == body.end() || f->is_null()) continue;
    if (!f->is_boolean())
      return HttpResponse::error(invalid_request(fmt::format("'{}' must be a boolean", key), "invalid_type", key));
    *dst = f->get<bool>();
  }
  const auto toks = model_->tokenize(it->get<std::string>(), add_special, parse_special);
  json out = json::array();
  for (int32_t t : toks) {
    if (with_pieces)
      out.push_back({{"id", t}, {"piece", model_->token_to_piece(t, true)}});
    else
      out.push_back(t);
  }
  return HttpResponse::json(200, dump_response(json{{"tokens", out}}));
}

HttpResponse Service::detokenize(const HttpRequest& req) {
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object())
    return HttpResponse::error(invalid_request("the request body is not a JSON object", "invalid_json"));
  auto it = body.find("tokens");
  if (it == body.end()) return HttpResponse::error(invalid_request("'tokens' is required", "missing_field", "tokens"));
  if (!it->is_array()) return HttpResponse::error(invalid_request("'tokens' must be an array of token ids", "invalid_type", "tokens"));
  std::vector<int32_t> toks;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& t = (*it)[i];
    if (!t.is_number_integer() && !t.is_number_unsigned())
      return HttpResponse::error(invalid_request(fmt::format("'tokens[{}]' must be an integer", i), "invalid_type", "tokens"));
    const int64_t id = t.get<int64_t>();
    if (id < 0 || id >= model_->n_vocab())
      return HttpResponse::error(invalid_request(
          fmt::format("'tokens[{}]' = {} is outside the vocabulary [0, {})", i, id, model_->n_vocab()), "invalid_value", "tokens"));
    toks.push_back(static_cast<int32_t>(id));
  }
  return HttpResponse::json(200, dump_response(json{{"content", model_->detokenize(toks)}}));
}

HttpResponse Service::models() const {
  json m = {{"id", model_id_}, {"object", "model"}, {"created", created_}, {"owned_by", "tandem"},
            {"meta", {{"arch", model_->arch()}, {"n_vocab", model_->n_vocab()}, {"n_ctx", ctx_per_seq_},
                      {"n_params", model_->n_params()}, {"parallel", opts_.parallel}}}};
  return HttpResponse::json(200, dump_response(json{{"object", "list"}, {"data", json::array({m})}}));
}

HttpResponse Service::metrics_text() const {
  const Metrics& m = metrics_;
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, auto value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
  };
  out += "# HELP tandem_requests_total HTTP responses sent, by status code.\n# TYPE tandem_requests_total counter\n";
  for (const auto& [status, count] : m.statuses()) out += fmt::format("tandem_requests_total{{status=\"{}\"}} {}\n", status, count);
  metric("tandem_prompt_tokens_total", "counter", "Prompt tokens decoded.", m.prompt_tokens.load());
  metric("tandem_generated_tokens_total", "counter", "Tokens generated.", m.generated_tokens.load());
  const double pns = static_cast<double>(m.prompt_ns.load()), gns = static_cast<double>(m.generation_ns.load());
  metric("tandem_prompt_tokens_per_second", "gauge", "Prompt tokens over the decode time of steps that held prompt chunks.",
         pns > 0 ? static_cast<double>(m.prompt_tokens.load()) / (pns * 1e-9) : 0.0);
  metric("tandem_generation_tokens_per_second", "gauge",
         "Generated tokens over the decode time of generation-only steps (approximate under mixed load).",
         gns > 0 ? static_cast<double>(m.generated_tokens.load()) / (gns * 1e-9) : 0.0);
  metric("tandem_requests_active", "gauge", "Requests holding sequences.", m.active.load());
  metric("tandem_requests_queued", "gauge", "Requests waiting for a free sequence.", m.queued.load());
  metric("tandem_sequences_busy", "gauge", "Sequence ids assigned to requests.", m.sequences_busy.load());
  metric("tandem_sequences_total", "gauge", "Sequence ids of the context (--parallel).", opts_.parallel);
  metric("tandem_kv_cells_used", "gauge", "Attention KV cells in use (live sequences and prefix-cache snapshots).",
         m.kv_cells.load());
  metric("tandem_kv_cells_total", "gauge", "Attention KV cells of the context.",
         ctx_ && ctx_->cell_bytes() > 0 ? ctx_->options().n_ctx : 0);
  metric("tandem_recurrent_slots_used", "gauge", "Recurrent state slots referenced by live sequences.",
         m.recurrent_slots.load());
  metric("tandem_decode_steps_total", "counter", "Decode steps of the batching loop.", m.steps.load());
  metric("tandem_http_workers", "gauge", "HTTP connection workers (a streaming request holds one throughout).",
         m.http_workers.load());
  metric("tandem_http_workers_busy", "gauge", "HTTP workers serving a connection.", m.http_busy.load());
  metric("tandem_http_connections_waiting", "gauge", "Accepted connections waiting for an HTTP worker.",
         m.http_waiting.load());
  metric("tandem_http_connections_overflowed_total", "counter",
         "Connections that found no free worker in time and went to the overflow lane (answered at once, then closed).",
         m.http_overflowed.load());
  metric("tandem_requests_rejected_overload_total", "counter",
         "Requests answered 503 server_overloaded by the overflow lane (also in tandem_requests_total{status=\"503\"}).",
         m.overload_rejected.load());
  metric("tandem_snapshots_used", "gauge", "Recurrent-state / cell snapshots held by the context.", m.snapshots.load());
  // Prefix cache (zeros when it is off).
  const PrefixCache::Stats cs = m.cache();
  metric("tandem_prefix_cache_enabled", "gauge", "1 when the prefix cache is on.", cache_ ? 1 : 0);
  metric("tandem_prompt_tokens_cached_total", "counter", "Prompt tokens restored from the prefix cache instead of decoded.",
         m.cached_prompt_tokens.load());
  metric("tandem_prefix_cache_lookups_total", "counter", "Requests that looked up the prefix cache.", cs.lookups);
  metric("tandem_prefix_cache_hits_total", "counter", "Lookups that restored a cached prefix.", cs.hits);
  metric("tandem_next_turn_tokens_total", "counter",
         "Tokens of a chat's next-turn prefix (conversation + reply as the template renders it) encoded after answering.",
         m.next_turn_tokens.load());
  metric("tandem_prefix_cache_recomputed_tokens_total", "counter",
         "Prompt tokens found in the cache tree past its last usable snapshot (processed again).", cs.recomputed_tokens);
  metric("tandem_prefix_cache_snapshots_taken_total", "counter", "Snapshots added to the prefix cache.", cs.snapshots_taken);
  metric("tandem_prefix_cache_snapshots_evicted_total", "counter", "Snapshots evicted (LRU) from the prefix cache.",
         cs.snapshots_evicted);
  metric("tandem_prefix_cache_snapshots", "gauge", "Snapshots held by the prefix cache.", cs.snapshots);
  metric("tandem_prefix_cache_cells", "gauge", "Attention cells charged to the prefix cache.", cs.cells);
  metric("tandem_prefix_cache_bytes", "gauge", "Bytes held by the prefix cache (state copies + attention cells).", cs.bytes);
  HttpResponse r;
  r.status = 200;
  r.content_type = "text/plain; version=0.0.4";
  r.body = std::move(out);
  return r;
}

}  // namespace tandem::server
