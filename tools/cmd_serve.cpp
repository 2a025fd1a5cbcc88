// `tandem serve -m MODEL [--host H] [--port P] [--parallel N] [--ctx N] [-t T]
//  [--api-key KEY] [--max-body BYTES] [--queue N] [--timeout S]`
// An OpenAI-compatible HTTP server: tandem::server::Service (src/runtime/server)
// behind cpp-httplib. The socket is bound first (port 0 picks a free one) and
// `listening on http://HOST:PORT` printed; /health answers 503 until the model
// is loaded, then 200.
#include <httplib.h>

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
  if (auto rc = tandem::tools::parse_args(app, argc, argv)) return *rc;
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
  svr.set_read_timeout(std::max<time_t>(5, static_cast<time_t>(o.timeout_s)), 0);
  svr.set_write_timeout(std::max<time_t>(5, static_cast<time_t>(o.timeout_s)), 0);
  auto handler = [&service](const httplib::Request& req, httplib::Response& res) {
    HttpRequest hr{req.method, req.path, req.body, req.get_header_value("Authorization")};
    send(service.handle(hr), res);
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
