// `tandem serve` past its HTTP workers: with --parallel 1 --queue 1 the
// server has 1 + 1 + 4 = 6 connection workers. 64 clients open connections at
// once, each sending a long streaming completion and keeping its connection
// open after the answer (as keep-alive clients do, so the workers stay held).
// Every client must get a complete, well-formed HTTP response — a finished
// event stream (200) or 503 with Retry-After and an OpenAI-style error body —
// never a reset, an early close or a hang. /health and /metrics answer during
// the overload, /metrics counts every 503, and the server serves normally
// afterwards.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "server_process.h"
#include "server_test_util.h"

namespace tandem::test {
namespace {

using Clock = std::chrono::steady_clock;

int connect_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// One HTTP/1.1 response read off a raw socket, and how the read ended.
struct RawReply {
  std::string failure;  // "" when a complete response arrived
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;                            // de-chunked
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Decodes a chunked body; false while it is incomplete.
bool dechunk(const std::string& raw, std::string& out) {
  out.clear();
  size_t at = 0;
  for (;;) {
    const size_t eol = raw.find("\r\n", at);
    if (eol == std::string::npos) return false;
    const size_t n = std::stoul(raw.substr(at, eol - at), nullptr, 16);
    if (n == 0) return raw.find("\r\n", eol + 2) != std::string::npos;
    if (raw.size() < eol + 2 + n + 2) return false;
    out.append(raw, eol + 2, n);
    at = eol + 2 + n + 2;
  }
}

// Sends `request` and reads one complete response (Content-Length or chunked)
// within `timeout`; does NOT close the socket (the caller holds it open).
RawReply exchange(int fd, const std::string& request, std::chrono::seconds timeout) {
  RawReply r;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    r.failure = std::string("send failed: ") + std::strerror(errno);
    return r;
  }
  const auto end = Clock::now() + timeout;
  std::string buf;
  size_t head_end = std::string::npos;
  for (;;) {
    if (head_end == std::string::npos && (head_end = buf.find("\r\n\r\n")) != std::string::npos) {
      std::string head = buf.substr(0, head_end);
      if (head.rfind("HTTP/1.1 ", 0) != 0) {
        r.failure = "not an HTTP/1.1 status line: " + head.substr(0, 80);
        return r;
      }
      r.status = std::atoi(head.c_str() + 9);
      size_t p = head.find("\r\n");
      while (p != std::string::npos) {
        const size_t q = head.find("\r\n", p + 2);
        const std::string line = head.substr(p + 2, q == std::string::npos ? std::string::npos : q - p - 2);
        const size_t colon = line.find(':');
        if (colon != std::string::npos) {
          size_t v = colon + 1;
          while (v < line.size() && line[v] == ' ') ++v;
          r.headers[lower(line.substr(0, colon))] = line.substr(v);
        }
        p = q;
      }
    }
    if (head_end != std::string::npos) {
      const std::string rest = buf.substr(head_end + 4);
      if (r.headers.count("content-length")) {
        const size_t n = std::stoul(r.headers["content-length"]);
        if (rest.size() >= n) {
          r.body = rest.substr(0, n);
          return r;
        }
      } else if (lower(r.headers["transfer-encoding"]) == "chunked") {
        if (dechunk(rest, r.body)) return r;
      } else {
        r.failure = "response without Content-Length or chunked encoding";
        return r;
      }
    }
    const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count());
    if (left <= 0) {
      r.failure = "no complete response in time (hang); got " + std::to_string(buf.size()) + " bytes";
      return r;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, std::min(left, 200)) <= 0) continue;
    char tmp[8192];
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n < 0) {
      r.failure = std::string("recv failed: ") + std::strerror(errno);  // ECONNRESET: a reset
      return r;
    }
    if (n == 0) {
      r.failure = "the server closed the connection before a complete response (" + std::to_string(buf.size()) +
                  " bytes)";
      return r;
    }
    buf.append(tmp, static_cast<size_t>(n));
  }
}

// The value of a labelled Prometheus sample, e.g. `tandem_requests_total{status="503"}`; 0 when absent.
double labelled_metric(const std::string& text, const std::string& sample) {
  const size_t at = text.find("\n" + sample + " ");
  return at == std::string::npos ? 0 : std::stod(text.substr(at + sample.size() + 2));
}

TEST(ServerOverload, EveryConnectionGetsAnAnswerAndTheServerKeepsServing) {
  auto m = Model::load(bundled_model());
  ASSERT_TRUE(m.ok()) << m.error();
  const std::string eos = std::to_string((*m)->eos());
  // --timeout 4 bounds every stream (the running one and the queued one).
  ServerProcess srv({"-m", bundled_model(), "--parallel", "1", "--queue", "1", "--ctx", "4096", "-t", "1",
                     "--timeout", "4"});
  ASSERT_TRUE(srv.ok()) << srv.error();
  const int workers = static_cast<int>(metric(metrics_text(srv.port()), "tandem_http_workers"));
  EXPECT_EQ(workers, 6);  // parallel + queue + 4
  // (503s before the burst: /health polls while the model loaded.)
  const double base503 = labelled_metric(metrics_text(srv.port()), "tandem_requests_total{status=\"503\"}");

  constexpr int kClients = 64;
  const std::string body = json{{"prompt", "Once upon a time"},
                                {"max_tokens", 100000},
                                {"temperature", 0},
                                {"logit_bias", {{eos, -100}}},
                                {"stream", true}}
                               .dump();
  const std::string request = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  std::vector<int> fds(kClients, -1);
  std::vector<RawReply> replies(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] {
      fds[i] = connect_loopback(srv.port());
      if (fds[i] < 0) {
        replies[i].failure = "connect failed";
      } else {
        replies[i] = exchange(fds[i], request, std::chrono::seconds(30));
      }
    });
  for (auto& t : clients) t.join();

  // Every connection is still open on the client side (the workers holding
  // keep-alive connections stay busy): the server must still answer GETs.
  const auto h0 = Clock::now();
  auto health = get_json(srv.port(), "/health");
  EXPECT_EQ(health.status, 200) << health.raw;
  auto met = get_json(srv.port(), "/metrics");
  EXPECT_EQ(met.status, 200);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - h0).count(), 5.0) << "/health and /metrics were held up";

  int ok = 0, busy = 0, overloaded = 0;
  for (int i = 0; i < kClients; ++i) {
    const RawReply& r = replies[i];
    ASSERT_EQ(r.failure, "") << "client " << i;
    if (r.status == 200) {
      ++ok;
      EXPECT_EQ(r.headers.at("content-type").rfind("text/event-stream", 0), 0u) << "client " << i;
      const std::string tail = "data: [DONE]\n\n";
      ASSERT_GE(r.body.size(), tail.size()) << "client " << i;
      EXPECT_EQ(r.body.substr(r.body.size() - tail.size()), tail) << "client " << i << ": the stream did not end";
    } else {
      ASSERT_EQ(r.status, 503) << "client " << i << ": " << r.body;
      EXPECT_TRUE(r.headers.count("retry-after")) << "client " << i << ": 503 without Retry-After";
      const json e = json::parse(r.body, nullptr, false);
      ASSERT_TRUE(e.is_object() && e.contains("error")) << "client " << i << ": " << r.body;
      EXPECT_EQ(e["error"]["type"], "server_error");
      EXPECT_FALSE(e["error"]["message"].get<std::string>().empty());
      const std::string code = e["error"]["code"];
      if (code == "server_overloaded") {
        ++overloaded;
        EXPECT_EQ(r.headers.count("connection") ? lower(r.headers.at("connection")) : "", "close") << "client " << i;
      } else {
        EXPECT_EQ(code, "queue_full") << "client " << i;
        ++busy;
      }
    }
  }
  std::printf("%d clients on %d workers: %d streams, %d x 503 queue_full, %d x 503 server_overloaded\n", kClients,
              workers, ok, busy, overloaded);
  EXPECT_GE(ok, 1);
  EXPECT_LE(ok, 2);  // one running, one queued
  // At most `workers` connections reach a worker; the rest overflow.
  EXPECT_GE(overloaded, kClients - workers);
  EXPECT_EQ(labelled_metric(met.raw, "tandem_requests_total{status=\"503\"}") - base503, busy + overloaded);
  EXPECT_EQ(metric(met.raw, "tandem_requests_rejected_overload_total"), overloaded);
  EXPECT_GE(metric(met.raw, "tandem_http_connections_overflowed_total"), overloaded);

  // The lane closes its connections itself: the server end is gone (EOF).
  for (int i = 0; i < kClients; ++i) {
    if (replies[i].status == 503 && lower(replies[i].headers["connection"]) == "close") {
      pollfd p{fds[i], POLLIN, 0};
      ASSERT_EQ(::poll(&p, 1, 5000), 1) << "client " << i;
      char c;
      EXPECT_EQ(::recv(fds[i], &c, 1, 0), 0) << "client " << i << ": the overloaded connection was left open";
    }
    ::close(fds[i]);
  }

  // Afterwards the server serves normally (the streams end by --timeout 4).
  JsonReply after;
  const auto until = Clock::now() + std::chrono::seconds(20);
  do {
    after = post_json(srv.port(), "/v1/completions", json{{"prompt", "The dog"}, {"max_tokens", 4}, {"temperature", 0}});
    if (after.status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  } while (Clock::now() < until);
  EXPECT_EQ(after.status, 200) << after.raw;
  EXPECT_TRUE(srv.alive());
  const std::string met2 = metrics_text(srv.port());
  EXPECT_EQ(metric(met2, "tandem_sequences_busy"), 0);
  EXPECT_EQ(metric(met2, "tandem_http_connections_waiting"), 0);
}

}  // namespace
}  // namespace tandem::test
