// `tandem serve -m MODEL [--host H] [--port P] [--parallel N] [--ctx N] [-t T]
//  [--api-key KEY] [--max-body BYTES] [--queue N] [--timeout S] [--cache-mem BYTES]
//  [--cache-snapshots N] [--snapshot-every N] [--no-prefix-cache]`
// An OpenAI-compatible HTTP server: tandem::server::Service (src/runtime/server)
// behind cpp-httplib. The socket is bound first (port 0 picks a free one) and
// `listening on http://HOST:PORT` printed; /health answers 503 until the model
// is loaded, then 200.
//
// Overload: connections are served by tandem::server::ConnectionPool
// (parallel + min(queue, 64) + 4 workers). A connection that finds no free
// worker within 200 ms goes to the pool's overflow lane, where it gets one
// answer and is closed: GET requests (/health, /metrics, /v1/models) are
// answered normally, everything else gets 503 `server_overloaded` with
// Retry-After. So under any overload every client gets a well-formed answer
// instead of waiting in an unbounded queue.
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "cli_common.h"
#include "command.h"
#include "runtime/server/connection_pool.h"
#include "runtime/server/service.h"

namespace cmd_serve {

using tandem::server::ConnectionPool;
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

// ------------------------------------------------------------------ transport
// Waits up to `ms` for `events` on fd (EINTR retried); true when ready (or
// hung up / in error: the following recv/send then reports it).
bool wait_fd(int fd, short events, int ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int r = ::poll(&p, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

// False once the peer has closed its side (EOF pending) or the socket failed.
bool peer_open(int fd) {
  if (!wait_fd(fd, POLLIN, 0)) return true;
  char c;
  const ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

std::string ip_of(const sockaddr_storage& a, int& port) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (a.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof buf);
    port = ntohs(v4->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
    port = ntohs(v6->sin6_port);
  }
  return buf;
}

// One accepted connection as an httplib::Stream: buffered reads, each read /
// write waiting at most the given time-out.
class SocketStream final : public httplib::Stream {
 public:
  SocketStream(int sock, int read_ms, int write_ms) : sock_(sock), read_ms_(read_ms), write_ms_(write_ms) {}
  bool is_readable() const override { return off_ < len_ || wait_fd(sock_, POLLIN, read_ms_); }
  bool is_writable() const override { return wait_fd(sock_, POLLOUT, write_ms_) && peer_open(sock_); }
  ssize_t read(char* ptr, size_t size) override {
    if (off_ == len_) {
      if (!wait_fd(sock_, POLLIN, read_ms_)) return -1;
      ssize_t n;
      do n = ::recv(sock_, buf_, sizeof buf_, 0);
      while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      off_ = 0;
      len_ = static_cast<size_t>(n);
    }
    const size_t k = std::min(size, len_ - off_);
    std::memcpy(ptr, buf_ + off_, k);
    off_ += k;
    return static_cast<ssize_t>(k);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable()) return -1;
    ssize_t n;
    do n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (::getpeername(sock_, reinterpret_cast<sockaddr*>(&a), &len) == 0) ip = ip_of(a, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (::getsockname(sock_, reinterpret_cast<sockaddr*>(&a), &len) == 0) ip = ip_of(a, port);
  }
  socket_t socket() const override { return sock_; }

 private:
  int sock_;
  int read_ms_, write_ms_;
  char buf_[4096];
  size_t off_ = 0, len_ = 0;
};

// httplib's accept loop hands connections to this queue (see the file comment).
class PoolQueue final : public httplib::TaskQueue {
 public:
  PoolQueue(ConnectionPool::Options o, tandem::server::Metrics* m) : pool_(o, m) {}
  void enqueue(std::function<void()> fn) override { pool_.enqueue(std::move(fn)); }
  void shutdown() override { pool_.shutdown(); }

 private:
  ConnectionPool pool_;
};

// The socket of the connection this worker thread serves (-1: none); the
// handler turns it into HttpRequest::client_gone.
thread_local int tl_connection = -1;

// httplib::Server serving each connection itself: the same keep-alive loop as
// httplib's own, except that a connection on the overflow lane (or one still
// waiting when the server stops) gets exactly one request, answered with
// `Connection: close`, and shorter waits, so the lane never sits on an idle
// or slow client. (process_and_close_socket is httplib's virtual hook; the
// protected process_request does the HTTP parsing, routing and writing.)
class HttpServer final : public httplib::Server {
 public:
  // httplib listens with a backlog of 5: a burst of connects beyond that has
  // its SYNs dropped and retried a second later. Listening again on the bound
  // socket raises the backlog (Linux).
  void widen_backlog() { ::listen(svr_sock_, SOMAXCONN); }

 private:
  bool process_and_close_socket(socket_t sock) override {
    const bool lane = ConnectionPool::in_overflow_lane();
    // A connection still waiting when the server stops gets one answer too
    // (the service then answers 503 shutting_down) instead of a bare close.
    const bool stopping = svr_sock_ == INVALID_SOCKET;
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto ms = [](time_t s, time_t us) { return static_cast<int>(std::min<time_t>(s * 1000 + us / 1000, 1 << 30)); };
    int read_ms = ms(read_timeout_sec_, read_timeout_usec_), idle_ms = ms(keep_alive_timeout_sec_, 0);
    if (lane || stopping) {
      // The request was sent when the lane takes the connection (>= 200 ms after it arrived).
      read_ms = std::min(read_ms, 5000);
      idle_ms = std::min(idle_ms, stopping ? 200 : 2000);
    }
    SocketStream strm(sock, read_ms, ms(write_timeout_sec_, write_timeout_usec_));
    tl_connection = sock;
    size_t left = lane || stopping ? 1 : std::max<size_t>(1, keep_alive_max_count_);
    bool ok = false;
    while (left > 0 && wait_request(sock, idle_ms, stopping)) {
      bool closed = false;
      ok = process_request(strm, /*close_connection=*/left == 1, closed, nullptr);
      if (!ok || closed) break;
      --left;
    }
    tl_connection = -1;
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ok;
  }

  // Waits up to `ms` until the next request's bytes arrive; in slices, so a
  // server that stops meanwhile ends idle keep-alive connections at once.
  bool wait_request(int sock, int ms, bool stopping) {
    for (int waited = 0;; waited += 100) {
      if (wait_fd(sock, POLLIN, std::min(100, std::max(0, ms - waited)))) return true;
      if (waited >= ms || (!stopping && svr_sock_ == INVALID_SOCKET)) return false;
    }
  }
};

int run_serve(int argc, char** argv) {
  const std::string cmd = "tandem serve";
  CLI::App app{"OpenAI-compatible HTTP server (continuous batching)", cmd};
  tandem::server::ServerOptions o;
  std::string host = "127.0.0.1";
  int port = 8080;
  size_t max_body = 1 << 20;
  app.add_option("-m,--model", o.model_path, "GGUF model (default: the bundled tiny-hybrid-stories.gguf)");
  tandem::tools::WeightLoadFlags weights;
  tandem::tools::add_weight_load_flags(app, weights);
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
  o.weights = weights.value();
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
  HttpServer svr;
  ConnectionPool::Options po;
  po.workers = o.parallel + std::min(o.queue, 64) + 4;
  svr.new_task_queue = [po, &service] { return new PoolQueue(po, &service.metrics()); };
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
    if (ConnectionPool::in_overflow_lane() && req.method != "GET") {
      // Every worker is busy: answer at once (GETs are cheap and still served).
      send(service.overloaded(), res);
      return;
    }
    HttpRequest hr{req.method, req.path, req.body, req.get_header_value("Authorization")};
    if (const int sock = tl_connection; sock >= 0) hr.client_gone = [sock] { return !peer_open(sock); };
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
  svr.widen_backlog();
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

}  // namespace cmd_serve
