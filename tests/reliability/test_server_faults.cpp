// `tandem serve` under load and faults (issue 11), loopback only, bounded in
// time: many concurrent streaming clients (no failures beyond queue-full
// 503s, resident memory flat after warm-up, p50/p99 reported), clients that
// hang up mid-stream, malformed HTTP, slow and oversize bodies, requests past
// the sequence budget, kill -9 + restart on the same port, and --api-key.
//
// TANDEM_REL_LOAD_SECONDS sets the load test's duration (default 15; the
// figures in docs/reliability.md come from a 60 s run).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../server/server_test_util.h"
#include "proc.h"
#include "serve_child.h"

namespace {

using tandem::reltest::ServeChild;
using tandem::test::get_json;
using tandem::test::json;
using tandem::test::metric;
using tandem::test::metrics_text;
using tandem::test::post_json;
using tandem::test::post_sse;
using Clock = std::chrono::steady_clock;
using tandem::reltest::kExe;
const std::string kTiny = std::string(TANDEM_FIXTURES) + "/models/tiny-granitehybrid.gguf";

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// ------------------------------------------------------------------ raw sockets
int connect_raw(int port) {
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

void send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may close early (e.g. on huge headers)
    off += static_cast<size_t>(n);
  }
}

// Reads until the peer closes or timeout_s passes; `closed` tells which.
std::string recv_until_close(int fd, double timeout_s, bool* closed) {
  std::string out;
  const auto end = Clock::now() + std::chrono::duration<double>(timeout_s);
  *closed = false;
  while (Clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      *closed = true;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// ------------------------------------------------------------------ load

// A streaming POST like tandem::test::post_sse, also keeping httplib's error
// (why a request got no response at all).
struct Sse {
  int status = 0;
  std::vector<std::string> events;
  std::string error;
};
Sse stream(int port, const json& body, int stop_after) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(60, 0);
  cli.set_connection_timeout(30, 0);
  Sse out;
  std::string buf;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
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
      if (buf.rfind("data: ", 0) == 0) out.events.push_back(buf.substr(6, end - 6));
      buf.erase(0, end + 2);
    }
    return stop_after <= 0 || static_cast<int>(out.events.size()) < stop_after;
  };
  auto r = cli.send(req);
  if (!r && out.status == 0) out.error = httplib::to_string(r.error());
  return out;
}

struct LoadFigures {
  int ok = 0, busy503 = 0, failed = 0, aborted = 0;
  std::vector<double> latency_s, ttft_s;
  long rss_warm_kb = 0, rss_max_kb = 0, rss_end_kb = 0;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

TEST(ServerFaults, SixtyFourStreamingClientsUnderLoad) {
  const char* env = std::getenv("TANDEM_REL_LOAD_SECONDS");
  const double dur = env ? std::atof(env) : 15.0;
  ServeChild s(kExe, {"-m", kTiny, "--parallel", "8", "--queue", "64", "--ctx", "256", "-t", "2"});
  ASSERT_TRUE(s.ready()) << s.stderr_text();
  constexpr int kClients = 64;
  const char* prompts[] = {"Once upon a time", "The little dog", "Lily wanted to", "One day, a bird"};
  LoadFigures f;
  std::mutex mu;
  std::vector<std::string> failures;
  const auto t0 = Clock::now();
  const auto stop_at = t0 + std::chrono::duration<double>(dur);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&, c] {
      for (int i = 0; Clock::now() < stop_at; ++i) {
        // Every 8th request hangs up after two events (a client that goes away).
        const bool abort = (c + i) % 8 == 7;
        const auto a = Clock::now();
        Sse r = stream(s.port(),
                       {{"prompt", prompts[(c + i) % 4]}, {"max_tokens", 8 + (c + i) % 17}, {"stream", true},
                        {"seed", c * 1000 + i}},
                       abort ? 2 : 0);
        const double lat = seconds(a, Clock::now());
        std::lock_guard<std::mutex> lk(mu);
        if (r.status == 503) {
          ++f.busy503;
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        } else if (r.status == 200 && abort) {
          ++f.aborted;
        } else if (r.status == 200 && !r.events.empty() && r.events.back() == "[DONE]") {
          ++f.ok;
          f.latency_s.push_back(lat);
        } else {
          ++f.failed;
          if (failures.size() < 5)
            failures.push_back("status " + std::to_string(r.status) + " (" + r.error + "), " + std::to_string(r.events.size()) +
                               " events" + (r.events.empty() ? "" : ", last: " + r.events.back()));
        }
      }
    });
  // Resident memory, sampled while the clients run: the warm-up level is the
  // largest sample of the first third; later samples may not grow past it by
  // more than a small bound (no per-request growth).
  std::vector<long> rss;
  while (Clock::now() < stop_at) {
    rss.push_back(s.rss_kb());
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  for (auto& t : clients) t.join();
  const double wall = seconds(t0, Clock::now());
  ASSERT_GE(rss.size(), 6u);
  const size_t warm = rss.size() / 3;
  f.rss_warm_kb = *std::max_element(rss.begin(), rss.begin() + static_cast<long>(warm));
  f.rss_max_kb = *std::max_element(rss.begin() + static_cast<long>(warm), rss.end());
  f.rss_end_kb = rss.back();

  const double p50 = percentile(f.latency_s, 0.5), p99 = percentile(f.latency_s, 0.99);
  std::printf("load: %d clients, %.1f s: %d ok, %d aborted by the client, %d x 503, %d failed; "
              "%.1f requests/s; latency p50 %.3f s, p99 %.3f s; VmRSS warm %ld KiB, max after %ld KiB, end %ld KiB\n",
              kClients, wall, f.ok, f.aborted, f.busy503, f.failed, f.ok / wall, p50, p99, f.rss_warm_kb,
              f.rss_max_kb, f.rss_end_kb);
  RecordProperty("latency_p50_ms", static_cast<int>(p50 * 1000));
  RecordProperty("latency_p99_ms", static_cast<int>(p99 * 1000));
  RecordProperty("rss_warm_kb", static_cast<int>(f.rss_warm_kb));
  RecordProperty("rss_max_kb", static_cast<int>(f.rss_max_kb));
  EXPECT_EQ(f.failed, 0) << (failures.empty() ? "" : failures[0]);
  EXPECT_GT(f.ok, kClients);  // every client got through at least once
  EXPECT_GT(f.aborted, 0);
#ifndef TANDEM_REL_ASAN
  // (Under ASan the server's RSS includes the allocator's quarantine of freed
  // blocks, up to 256 MiB by design: flatness is measured in the release build.)
  EXPECT_LE(f.rss_max_kb, f.rss_warm_kb + f.rss_warm_kb / 10 + 8 * 1024) << "resident memory grows under load";
#endif
  // Everything is released once the clients are gone.
  double busy = -1;
  for (int i = 0; i < 200 && busy != 0; ++i) {
    busy = metric(metrics_text(s.port()), "tandem_sequences_busy");
    if (busy != 0) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_EQ(busy, 0);
  EXPECT_TRUE(s.alive());
}

// ------------------------------------------------------------------ faults

TEST(ServerFaults, MalformedHttpIsRefusedAndTheServerKeepsServing) {
  ServeChild s(kExe, {"-m", kTiny, "--parallel", "2", "--ctx", "128", "-t", "1"});
  ASSERT_TRUE(s.ready()) << s.stderr_text();
  const std::string huge_header = "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n";
  std::string many_headers = "GET /health HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 20000; ++i) many_headers += "X-H" + std::to_string(i) + ": v\r\n";
  many_headers += "\r\n";
  static constexpr char kGarbage[] = "\x00\xff\x13\x37garbage\x01\x02\r\n\r\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"binary garbage", std::string(kGarbage, sizeof(kGarbage) - 1)},  // (embedded NUL: length from sizeof)
      {"bad request line", "GET\r\n\r\n"},
      {"unknown method and version", "BREW /pot HTTP/9.9\r\nHost: x\r\n\r\n"},
      {"negative content length", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"},
      {"bad chunked body", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n"},
      {"huge header", huge_header},
      {"many headers", many_headers},
      {"body that is not JSON",
       "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"prompt\""},
  };
  for (const auto& [what, bytes] : cases) {
    const int fd = connect_raw(s.port());
    ASSERT_GE(fd, 0) << what;
    send_all(fd, bytes);
    ::shutdown(fd, SHUT_WR);
    bool closed = false;
    const std::string reply = recv_until_close(fd, 15, &closed);
    ::close(fd);
    EXPECT_TRUE(closed) << what << ": the server kept the connection open";
    // Either no answer or a 4xx status line; never a 2xx/5xx for garbage.
    if (!reply.empty()) {
      EXPECT_EQ(reply.rfind("HTTP/1.1 4", 0), 0u) << what << ": " << reply.substr(0, 200);
    }
    ASSERT_TRUE(s.alive()) << what << ": the server died: " << s.stderr_text();
    auto h = get_json(s.port(), "/health");
    EXPECT_EQ(h.status, 200) << what;
  }
  auto r = post_json(s.port(), "/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 4}});
  EXPECT_EQ(r.status, 200) << r.raw;
}

TEST(ServerFaults, SlowBodyTimesOutWhileOthersAreServed) {
  // --timeout 1: the HTTP read time-out is its floor of 5 s.
  ServeChild s(kExe, {"-m", kTiny, "--parallel", "2", "--ctx", "128", "-t", "1", "--timeout", "1"});
  ASSERT_TRUE(s.ready()) << s.stderr_text();
  std::vector<int> slow;
  for (int i = 0; i < 4; ++i) {
    const int fd = connect_raw(s.port());
    ASSERT_GE(fd, 0);
    send_all(fd, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: 1000\r\n\r\n{\"prompt\":");
    slow.push_back(fd);
  }
  // While those bodies trickle (never), other clients get answers at once.
  const auto a = Clock::now();
  for (int i = 0; i < 3; ++i) {
    auto r = post_json(s.port(), "/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 4}});
    EXPECT_EQ(r.status, 200) << r.raw;
  }
  EXPECT_LT(seconds(a, Clock::now()), 4.0) << "slow bodies held up other clients";
  // The slow connections are dropped by the read time-out (5 s), bounded.
  for (int fd : slow) {
    bool closed = false;
    const std::string reply = recv_until_close(fd, 20, &closed);
    ::close(fd);
    EXPECT_TRUE(closed) << "a slow body was never timed out";
    if (!reply.empty()) {
      EXPECT_EQ(reply.rfind("HTTP/1.1 4", 0), 0u) << reply.substr(0, 200);
    }
  }
  EXPECT_TRUE(s.alive());
  EXPECT_EQ(get_json(s.port(), "/health").status, 200);
}

TEST(ServerFaults, OversizeBodiesAndRequestsPastTheBudgetAreRefused) {
  ServeChild s(kExe, {"-m", kTiny, "--parallel", "2", "--ctx", "32", "-t", "1", "--max-body", "4096"});
  ASSERT_TRUE(s.ready()) << s.stderr_text();
  // 413 for a body over --max-body.
  auto big = post_json(s.port(), "/v1/completions", json{{"prompt", std::string(10000, 'a')}, {"max_tokens", 1}});
  EXPECT_EQ(big.status, 413) << big.raw;
  // A prompt longer than a sequence's window (32 tokens).
  std::string long_prompt;
  for (int i = 0; i < 40; ++i) long_prompt += "Once upon a time ";
  auto r1 = post_json(s.port(), "/v1/completions", json{{"prompt", long_prompt}, {"max_tokens", 4}});
  EXPECT_EQ(r1.status, 400) << r1.raw;
  EXPECT_FALSE(r1.body["error"]["message"].get<std::string>().empty());
  // More choices than the server has sequences (recurrent slots).
  auto r2 = post_json(s.port(), "/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 4}, {"n", 3}});
  EXPECT_EQ(r2.status, 400) << r2.raw;
  // Token ids outside the vocabulary.
  auto r3 = post_json(s.port(), "/v1/completions", json{{"prompt", {1, 2, 999999}}, {"max_tokens", 4}});
  EXPECT_EQ(r3.status, 400) << r3.raw;
  // Generation that would run past the window stops with "length", not an
  // error; the last sampled token needs no cell, so the total is at most ctx + 1.
  // (End of generation banned: with sampling, the random-weight model may emit
  // it early, and the test is about the window, not the model.)
  auto r4 = post_json(s.port(), "/v1/completions",
                      json{{"prompt", "Once upon a time"}, {"max_tokens", 1000}, {"logit_bias", {{"2", -100}}}});
  EXPECT_EQ(r4.status, 200) << r4.raw;
  if (r4.status == 200) {
    EXPECT_LE(r4.body["usage"]["total_tokens"].get<int>(), 33);
    EXPECT_EQ(r4.body["choices"][0]["finish_reason"], "length");
  }
  // Both sequences busy with full windows at once + one more: answered or 503, no crash.
  std::vector<std::thread> ts;
  std::atomic<int> bad{0};
  for (int i = 0; i < 6; ++i)
    ts.emplace_back([&] {
      auto r = post_json(s.port(), "/v1/completions", json{{"prompt", "Once upon a time"}, {"max_tokens", 1000}, {"n", 2}});
      if (r.status != 200 && r.status != 503) ++bad;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_TRUE(s.alive()) << s.stderr_text();
}

TEST(ServerFaults, KillNineThenRestartOnTheSamePort) {
  int port = -1;
  {
    ServeChild s(kExe, {"-m", kTiny, "--parallel", "2", "--ctx", "128", "-t", "1"});
    ASSERT_TRUE(s.ready()) << s.stderr_text();
    port = s.port();
    // Requests in flight when the process dies.
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i)
      ts.emplace_back([&] { post_sse(port, "/v1/completions", {{"prompt", "Once"}, {"max_tokens", 200}, {"stream", true}}); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    s.stop(SIGKILL);
    for (auto& t : ts) t.join();
  }
  // A new server on the same port starts clean (no stale state, no bind error).
  ServeChild again(kExe, {"-m", kTiny, "--parallel", "2", "--ctx", "128", "-t", "1"}, port);
  ASSERT_TRUE(again.ready()) << again.stderr_text();
  EXPECT_EQ(again.port(), port);
  const std::string met = metrics_text(port);
  EXPECT_EQ(metric(met, "tandem_sequences_busy"), 0);
  EXPECT_EQ(metric(met, "tandem_generated_tokens_total"), 0);
  auto r = post_json(port, "/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 4}});
  EXPECT_EQ(r.status, 200) << r.raw;
}

TEST(ServerFaults, ApiKeyGuardsEveryEndpointButHealthAndIsNeverLogged) {
  const std::string key = "sk-rel-Secret-7f3a9c";
  ServeChild s(kExe, {"-m", kTiny, "--parallel", "2", "--ctx", "128", "-t", "1", "--api-key", key});
  ASSERT_TRUE(s.ready()) << s.stderr_text();
  EXPECT_EQ(get_json(s.port(), "/health").status, 200);
  struct Ep {
    const char* method;
    const char* path;
    json body;
  };
  const std::vector<Ep> eps = {
      {"GET", "/v1/models", nullptr},
      {"GET", "/metrics", nullptr},
      {"POST", "/v1/completions", {{"prompt", "Once"}, {"max_tokens", 2}}},
      {"POST", "/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 2}}},
      {"POST", "/tokenize", {{"content", "Once"}}},
      {"POST", "/detokenize", {{"tokens", {1, 2}}}},
      {"GET", "/no/such/endpoint", nullptr},
  };
  const std::vector<std::string> wrong = {"",
                                          key.substr(0, key.size() - 1),
                                          key + "x",
                                          std::string(key.size(), 'a'),
                                          "sk-rel-secret-7f3a9c"};
  auto call = [&](const Ep& e, const std::string& auth_header) {
    httplib::Client cli("127.0.0.1", s.port());
    cli.set_read_timeout(60, 0);
    httplib::Headers h;
    if (!auth_header.empty()) h.emplace("Authorization", auth_header);
    auto r = std::string(e.method) == "GET" ? cli.Get(e.path, h) : cli.Post(e.path, h, e.body.dump(), "application/json");
    return r ? r->status : 0;
  };
  for (const auto& e : eps) {
    for (const auto& w : wrong) EXPECT_EQ(call(e, w.empty() ? "" : "Bearer " + w), 401) << e.path << " key '" << w << "'";
    EXPECT_EQ(call(e, key), 401) << e.path << ": the key without 'Bearer '";
    EXPECT_EQ(call(e, "Basic " + key), 401) << e.path;
    const int ok = call(e, "Bearer " + key);
    EXPECT_NE(ok, 401) << e.path;
    EXPECT_EQ(ok, std::string(e.path) == "/no/such/endpoint" ? 404 : 200) << e.path;
  }
  const int st = s.stop(SIGTERM);
  EXPECT_NE(st, -1);
  EXPECT_EQ(s.stderr_text().find(key), std::string::npos) << "the API key appears in the server's log";
  EXPECT_EQ(s.stderr_text().find("Secret"), std::string::npos) << "part of the API key appears in the log";
}

TEST(ServerFaults, StartupErrorsAreOneLine) {
  // A port another server holds.
  ServeChild first(kExe, {"-m", kTiny, "-t", "1"});
  ASSERT_TRUE(first.ready()) << first.stderr_text();
  ServeChild second(kExe, {"-m", kTiny, "-t", "1"}, first.port(), {}, 20);
  EXPECT_FALSE(second.ready());
  const int st = second.stop(SIGTERM, 20);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) != 0);
  const std::string err = second.stderr_text();
  EXPECT_EQ(err.find('\n'), err.size() - 1) << err;
  EXPECT_NE(err.find(std::to_string(first.port())), std::string::npos) << err;
}

}  // namespace
