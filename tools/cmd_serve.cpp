// `tandem serve -m MODEL [--host H] [--port P] [--parallel N] [--ctx N] [-t T]
//  [--api-key KEY] [--max-body BYTES] [--queue N] [--timeout S] [--cache-mem BYTES]
//  [--cache-snapshots N] [--snapshot-every N] [--no-prefix-cache]`
// An OpenAI-compatible HTTP server: tandem::server::Service (src/runtime/server)
// behind cpp-httplib. The socket is bound first (port 0 picks a free one) and
// `listening on http://HOST:PORT` printed; /health answers 503 until the model
// is loaded, then 200.
#include <httplib.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "cli_common.h"
#include "command.h"
#include "runtime/server/service.h"

namespace {

using tandem::server::EventSource;
using tandem::server::HttpRequest;
using tandem::server::HttpResponse;
using tandem::server::Service;

void send(const HttpResponse& r, httplib::Response& res) {
  res.status = r.status;
  for (const auto& [k, v] : r.headers) res.set_header(k, v);
  if (!r.stream) {
    res.set_content(r.body, r.content_type);
    return;
  }
  auto src = r.stream;
  res.set_chunked_content_provider(
      r.content_type,
      [src](size_t, httplib::DataSink& sink) {
        std::string out;
        for (;;) {
          switch (src->next(out, std::chrono::milliseconds(100))) {
            case EventSource::Pull::kDone:
              sink.done();
              return true;
            case EventSource::Pull::kData:
              if (!sink.write(out.data(), out.size())) {
                src->cancel();  // the client went away: free its sequence(s)
                return false;
              }
              return true;
            case EventSource::Pull::kIdle:
              if (!sink.is_writable()) {
                src->cancel();
                return false;
              }
              break;
          }
        }
      },
      [src](bool success) {
        if (!success) src->cancel();
      });
}

int run_serve(int argc, char** argv) {
  const std::string cmd = "tandem serve";
  CLI::App app{"OpenAI-compatible HTTP server (continuous batching)", cmd};
  tandem::server::ServerOptions o;
  std::string host = "127.0.0.1";
  int port = 8080;
  size_t max_body = 1 << 20;
  app.add_option("-m,--model", o.model_path, "GGUF model (default: the bundled tiny-hybrid-stories.gguf)");
  app.add_option("--host", host, "address to listen on")->capture_default_str();
  app.add_option("--port", port, "TCP port (0: pick a free one)")->capture_default_str()->check(CLI::Range(0, 65535));
  app.add_option("--parallel", o.parallel, "sequences decoded together")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--ctx", o.ctx, "context window per sequence in tokens (0: the model's training context)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("-t,--threads", o.threads, "compute threads (0: all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--api-key", o.api_key, "require 'Authorization: Bearer KEY' on every endpoint but /health");
  app.add_option("--max-body", max_body, "largest request body in bytes")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--queue", o.queue, "requests that may wait for a free sequence (then 503)")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--timeout", o.timeout_s, "time limit of one request in seconds")->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--model-id", o.model_id, "model name shown in /v1/models (default: the file name)");
  app.add_option("--batch", o.batch, "tokens per decode step")->capture_default_str()->check(CLI::Range(1, 8192));
  bool no_prefix_cache = false;
  std::string state_type = "f32";
  app.add_option("--state-type", state_type, "recurrent state storage: f32 or bf16 (half the bytes)")
      ->capture_default_str()->check(CLI::IsMember({"f32", "bf16"}));
  app.add_option("--cache-mem", o.cache_mem, "prefix cache budget in bytes: snapshots + attention cells (0: off)")
      ->capture_default_str();
  app.add_option("--cache-snapshots", o.cache_snapshots, "prefix cache: snapshots held at most")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--snapshot-every", o.snapshot_every,
                 "prefix cache: snapshot long prompts every N tokens (0: only at chat-message boundaries and ends)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_flag("--no-prefix-cache", no_prefix_cache, "disable prefix reuse across requests");
  if (auto rc = tandem::tools::parse_args(app, argc, argv)) return *rc;
  if (no_prefix_cache) o.cache_mem = 0;
  o.state_type = state_type == "bf16" ? tandem::StateType::kBF16 : tandem::StateType::kF32;
  if (o.model_path.empty()) {
    o.model_path = tandem::tools::find_default_model();
    if (o.model_path.empty()) return tandem::tools::fail(cmd, "no model given (-m) and the bundled model was not found");
  }

  // SIGINT / SIGTERM end the server through sigwait below; every thread
  // started from here inherits the blocked mask. SIGPIPE is ignored (a client
  // that goes away mid-stream is a failed write, not a crash).
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  Service service(o);
  httplib::Server svr;
  const size_t n_http_threads = static_cast<size_t>(o.parallel + std::min(o.queue, 64) + 4);
  svr.new_task_queue = [n_http_threads] { return new httplib::ThreadPool(n_http_threads); };
  svr.set_payload_max_length(max_body);
  // Streams send one small chunk per token: without TCP_NODELAY, Nagle's
  // algorithm and delayed ACKs hold each one back by up to ~40 ms.
  svr.set_tcp_nodelay(true);
  // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, with which a
  // second server binds a port that is already serving and silently takes
  // half of its connections instead of failing with "cannot bind".
  svr.set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<void*>(&yes), sizeof(yes));
  });
  svr.set_read_timeout(std::max<time_t>(5, static_cast<time_t>(o.timeout_s)), 0);
  svr.set_write_timeout(std::max<time_t>(5, static_cast<time_t>(o.timeout_s)), 0);
  auto handler = [&service](const httplib::Request& req, httplib::Response& res) {
    HttpRequest hr{req.method, req.path, req.body, req.get_header_value("Authorization")};
    HttpResponse r = service.handle(hr);
    if (r.stream) {
      // cpp-httplib 0.11 compresses every text/* response the client accepts
      // compressed, text/event-stream included, and its compressors buffer:
      // with `Accept-Encoding: br` (Node's fetch sends it) each token went
      // through a quality-11 Brotli pass and reached the client only when the
      // encoder's buffer filled (single-stream streaming ran at ~40 tok/s, time
      // to first token ~370 ms). Server-sent events go out uncompressed: the
      // choice is made from the request headers after this handler returns,
      // and the Request object httplib hands us is its own mutable local.
      const_cast<httplib::Request&>(req).headers.erase("Accept-Encoding");
    }
    send(r, res);
  };
  for (auto reg : {&httplib::Server::Get, &httplib::Server::Post, &httplib::Server::Put, &httplib::Server::Delete,
                   &httplib::Server::Patch})
    (svr.*reg)(".*", handler);
  // Errors httplib produces itself (413 body too large, ...) get an OpenAI-style body.
  svr.set_error_handler([&service](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    HttpResponse r = service.transport_error(res.status);
    res.set_content(r.body, r.content_type);
  });

  int bound = port;
  if (port == 0) {
    bound = svr.bind_to_any_port(host);
    if (bound < 0) return tandem::tools::fail(cmd, "cannot bind " + host);
  } else if (!svr.bind_to_port(host, port)) {
    return tandem::tools::fail(cmd, "cannot bind " + host + ":" + std::to_string(port));
  }
  std::printf("listening on http://%s:%d\n", host.c_str(), bound);
  std::fflush(stdout);
  std::thread http([&svr] { svr.listen_after_bind(); });
  // httplib's stop() does nothing until listen_after_bind() has started, so an
  // early stop (a model that fails to load) would leave the accept loop
  // running and the join below hanging: wait (bounded) until it runs.
  for (int i = 0; i < 5000 && !svr.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  auto loaded = service.load();
  if (!loaded) {
    svr.stop();
    http.join();
    return tandem::tools::fail(cmd, loaded.message());
  }
  std::fprintf(stderr, "tandem serve: model '%s' ready (%d parallel sequences, %d tokens each)\n",
               service.model_id().c_str(), o.parallel, service.ctx_per_seq());

  int sig = 0;
  sigwait(&sigs, &sig);
  std::fprintf(stderr, "tandem serve: signal %d, shutting down\n", sig);
  service.shutdown();
  svr.stop();
  http.join();
  return 0;
}

tandem::tools::CommandRegistration reg("serve", "OpenAI-compatible HTTP server with continuous batching", run_serve);

}  // namespace
