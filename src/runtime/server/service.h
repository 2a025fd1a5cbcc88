#pragma once
// `tandem serve` without the socket: loads the model, owns the Context and
// the Scheduler, and answers transport-neutral HttpRequests (routing, auth,
// validation, OpenAI-shaped JSON, server-sent events, Prometheus metrics).
// tools/cmd_serve.cpp puts it behind cpp-httplib.
#include <atomic>
#include <memory>
#include <string>

#include "runtime/server/api.h"
#include "runtime/server/scheduler.h"
#include "tandem/tandem.h"

namespace tandem::server {

struct ServerOptions {
  std::string model_path;
  WeightLoad weights = WeightLoad::kAuto;  // --mmap / --no-mmap (tandem.h says what each does)
  std::string model_id;     // name in /v1/models; "" = the file name without .gguf
  int parallel = 4;         // sequences decoded together
  int ctx = 0;              // positions per sequence; 0 = the model's training context
  int threads = 0;          // 0 = hardware concurrency
  std::string api_key;      // "" = no authentication
  int queue = 64;           // requests that may wait for a free sequence
  double timeout_s = 600;   // wall-clock limit of one request (queue time included)
  int batch = 256;          // tokens per decode step
  StateType state_type = StateType::kF32;  // recurrent state storage (--state-type f32|bf16)
  // Prefix cache (src/runtime/prefix_cache.h): bytes of snapshots + pinned
  // attention cells (0: off), snapshots held at most, snapshot distance in
  // long prompts (0: only chat boundaries and prompt/generation ends).
  size_t cache_mem = size_t{256} << 20;
  int cache_snapshots = 64;
  int snapshot_every = 128;
};

class Service {
 public:
  explicit Service(ServerOptions opts);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Loads the model and creates the Context and the decode loop; ready() after success.
  Outcome load();
  bool ready() const { return ready_.load(); }
  // Answers one request (thread-safe; called from many HTTP threads).
  HttpResponse handle(const HttpRequest& req);
  // An error response for a status the transport produced itself (413 body too
  // large, 404 ...), counted in the metrics like any other.
  HttpResponse transport_error(int status);
  // 503 server_overloaded with Retry-After: the answer to a request that
  // arrived while every HTTP worker was busy (ConnectionPool's overflow
  // lane), counted in the metrics.
  HttpResponse overloaded();
  void shutdown();

  const std::string& model_id() const { return model_id_; }
  int ctx_per_seq() const { return ctx_per_seq_; }
  const ServerOptions& options() const { return opts_; }
  Metrics& metrics() { return metrics_; }

 private:
  HttpResponse route(const HttpRequest& req);
  HttpResponse completions(const HttpRequest& req, bool chat);
  HttpResponse tokenize(const HttpRequest& req);
  HttpResponse detokenize(const HttpRequest& req);
  HttpResponse models() const;
  HttpResponse metrics_text() const;

  ServerOptions opts_;
  std::string model_id_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Context> ctx_;
  std::unique_ptr<PrefixCache> cache_;
  std::unique_ptr<Scheduler> sched_;
  Metrics metrics_;
  int ctx_per_seq_ = 0;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};  // shutdown() was called: 503 shutting_down
  int64_t created_ = 0;
};

}  // namespace tandem::server
