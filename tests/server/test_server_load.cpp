// `tandem serve` under load: 16 concurrent clients on 4 sequences (continuous
// batching must not change greedy results), a client that aborts mid-stream
// (its sequence is freed, the server keeps serving), non-streaming clients and
// clients in the middle of a long prefill that hang up (cancelled, not run to
// the end), a full queue (503 + Retry-After) and the per-request time limit (408).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <string>
#include <thread>

#include "server_process.h"
#include "server_test_util.h"

namespace tandem::test {
namespace {

const char* kPrompts[] = {"Once upon a time", "The little dog", "Lily wanted to", "One day, a bird",
                          "Tom and Sue went", "There was a big", "The sun was", "Mom said"};

TEST(ServerLoad, SixteenClientsOnFourSequencesMatchSingleRuns) {
  auto m = Model::load(bundled_model());
  ASSERT_TRUE(m.ok()) << m.error();
  ServerProcess srv({"-m", bundled_model(), "--parallel", "4", "--ctx", "128", "-t", "2"});
  ASSERT_TRUE(srv.ok()) << srv.error();
  constexpr int kClients = 16;
  // Different lengths so prefill chunks and decode steps of different requests mix.
  auto max_tokens = [](int i) { return 12 + 3 * (i % 5); };
  std::vector<std::future<JsonReply>> futs;
  for (int i = 0; i < kClients; ++i)
    futs.push_back(std::async(std::launch::async, [&, i] {
      return post_json(srv.port(), "/v1/completions",
                       json{{"prompt", kPrompts[i % 8]}, {"max_tokens", max_tokens(i)}, {"temperature", 0}});
    }));
  for (int i = 0; i < kClients; ++i) {
    JsonReply r = futs[i].get();
    ASSERT_EQ(r.status, 200) << "client " << i << ": " << r.raw;
    const Reference ref = greedy_reference(**m, (*m)->tokenize(kPrompts[i % 8]), max_tokens(i));
    EXPECT_EQ(r.body["choices"][0]["text"], ref.text) << "client " << i;
    EXPECT_EQ(r.body["usage"]["completion_tokens"], ref.tokens.size()) << "client " << i;
  }
  const std::string met = metrics_text(srv.port());
  EXPECT_EQ(metric(met, "tandem_requests_active"), 0);
  EXPECT_EQ(metric(met, "tandem_sequences_busy"), 0);
  EXPECT_GE(metric(met, "tandem_generated_tokens_total"), 16 * 12);
}

TEST(ServerLoad, AbortedStreamFreesItsSequence) {
  auto m = Model::load(bundled_model());
  ASSERT_TRUE(m.ok()) << m.error();
  const std::string eos = std::to_string((*m)->eos());  // banned below so the generation runs long
  ServerProcess srv({"-m", bundled_model(), "--parallel", "2", "--ctx", "4096", "-t", "1"});
  ASSERT_TRUE(srv.ok()) << srv.error();
  // A long generation; the client reads a few events and hangs up.
  auto s = post_sse(srv.port(), "/v1/completions",
                    json{{"prompt", "Once upon a time"}, {"max_tokens", 4000}, {"temperature", 0},
                         {"logit_bias", {{eos, -100}}}, {"stream", true}},
                    /*stop_after=*/5);
  EXPECT_EQ(s.events.size(), 5u);
  // The sequence must be released at a following step (bounded wait).
  // Cells still in use afterwards are only those the prefix cache pins (the
  // prompt's snapshot), never the aborted sequence's.
  double busy = -1, slots = -1, cells = -1, cached_cells = -2, generated = -1;
  for (int i = 0; i < 200; ++i) {
    const std::string met = metrics_text(srv.port());
    busy = metric(met, "tandem_sequences_busy");
    slots = metric(met, "tandem_recurrent_slots_used");
    cells = metric(met, "tandem_kv_cells_used");
    cached_cells = metric(met, "tandem_prefix_cache_cells");
    generated = metric(met, "tandem_generated_tokens_total");
    if (busy == 0 && slots == 0 && cells == cached_cells) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_EQ(busy, 0);
  EXPECT_EQ(slots, 0);
  EXPECT_EQ(cells, cached_cells);
  EXPECT_LE(cached_cells, static_cast<double>((*m)->tokenize("Once upon a time").size()));
  EXPECT_LT(generated, 4000) << "the aborted request ran to completion instead of being cancelled";
  // And the server keeps serving.
  auto r = post_json(srv.port(), "/v1/completions", json{{"prompt", "The dog"}, {"max_tokens", 5}, {"temperature", 0}});
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_TRUE(srv.alive());
}

TEST(ServerLoad, NonStreamingClientThatHangsUpFreesItsSequence) {
  auto m = Model::load(bundled_model());
  ASSERT_TRUE(m.ok()) << m.error();
  const std::string eos = std::to_string((*m)->eos());
  ServerProcess srv({"-m", bundled_model(), "--parallel", "1", "--ctx", "32768", "-t", "1"});
  ASSERT_TRUE(srv.ok()) << srv.error();
  // A non-streaming request far too long to finish (EOS banned, 30000
  // tokens); the client gives up after 500 ms and closes its connection.
  {
    httplib::Client cli("127.0.0.1", srv.port());
    cli.set_read_timeout(0, 500000);
    auto r = cli.Post("/v1/completions",
                      json{{"prompt", "Once upon a time"}, {"max_tokens", 30000}, {"temperature", 0},
                           {"logit_bias", {{eos, -100}}}}
                          .dump(),
                      "application/json");
    EXPECT_FALSE(r) << "the request was expected to outlast the client's patience";
  }
  // The server notices at its next poll of the connection (100 ms) and
  // cancels: the sequence is free long before the generation could end.
  double busy = -1, gone = 0;
  std::string met;
  for (int i = 0; i < 200; ++i) {
    met = metrics_text(srv.port());
    busy = metric(met, "tandem_sequences_busy");
    gone = met.find("tandem_requests_total{status=\"499\"} 1") != std::string::npos;
    if (busy == 0 && gone) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_EQ(busy, 0) << "the sequence of a client that hung up is still busy";
  EXPECT_TRUE(gone) << "no 499 (client closed request) counted:\n" << met;
  EXPECT_LT(metric(met, "tandem_generated_tokens_total"), 30000);
  // The only sequence is free again: a new request is served at once.
  auto ok = post_json(srv.port(), "/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}});
  EXPECT_EQ(ok.status, 200) << ok.raw;
}

// Sends `body` to /v1/completions on a raw connection and closes it once the
// server has decoded part of the prompt (tandem_prompt_tokens_total above
// `before`; polled for at most 10 s), so the hang-up lands during the prefill
// however loaded the machine is. (A fixed delay could run out before a starved
// server had begun, and then the request would never start.)
void post_and_hang_up_during_prefill(int port, const std::string& body, double before) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  for (size_t sent = 0; sent < req.size();) {
    const ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    ASSERT_GT(n, 0) << "send failed";
    sent += static_cast<size_t>(n);
  }
  for (int i = 0; i < 400; ++i) {
    if (metric(metrics_text(port), "tandem_prompt_tokens_total") > before) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ::close(fd);
}

TEST(ServerLoad, ClientThatHangsUpDuringPrefillStopsIt) {
  // A ~12000-token prompt in 64-token chunks takes many decode steps (seconds);
  // each client goes away once the first chunks are decoded, long before its
  // prompt is done.
  ServerProcess srv({"-m", bundled_model(), "--parallel", "1", "--ctx", "16384", "-t", "1", "--batch", "64"});
  ASSERT_TRUE(srv.ok()) << srv.error();
  std::string prompt;
  for (int i = 0; i < 1100; ++i) prompt += "Once upon a time there was a dog. ";
  auto toks = post_json(srv.port(), "/tokenize", json{{"content", prompt}});
  ASSERT_EQ(toks.status, 200);
  const double n_prompt = static_cast<double>(toks.body["tokens"].size());
  ASSERT_GT(n_prompt, 10000);
  for (const bool stream : {true, false}) {
    const double before = metric(metrics_text(srv.port()), "tandem_prompt_tokens_total");
    ASSERT_GE(before, 0) << "no /metrics answer";
    post_and_hang_up_during_prefill(srv.port(), json{{"prompt", prompt}, {"max_tokens", 4}, {"stream", stream}}.dump(),
                                    before);
    double busy = -1, processed = -1;
    for (int i = 0; i < 200; ++i) {
      const std::string met = metrics_text(srv.port());
      busy = metric(met, "tandem_sequences_busy");
      processed = metric(met, "tandem_prompt_tokens_total") - before;
      if (busy == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    EXPECT_EQ(busy, 0) << (stream ? "streaming" : "non-streaming") << ": the sequence is still busy";
    EXPECT_GT(processed, 0) << (stream ? "streaming" : "non-streaming") << ": the request never started";
    EXPECT_LT(processed, n_prompt) << (stream ? "streaming" : "non-streaming")
                                   << ": the whole prompt was processed for a client that had gone";
  }
  auto ok = post_json(srv.port(), "/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}});
  EXPECT_EQ(ok.status, 200) << ok.raw;
}

TEST(ServerLoad, FullQueueGets503AndTimeLimitGets408) {
  auto m = Model::load(bundled_model());
  ASSERT_TRUE(m.ok()) << m.error();
  const std::string eos = std::to_string((*m)->eos());
  ServerProcess srv({"-m", bundled_model(), "--parallel", "1", "--queue", "0", "--ctx", "32768", "-t", "1",
                     "--timeout", "1"});
  ASSERT_TRUE(srv.ok()) << srv.error();
  // Occupies the only sequence until the 1 s limit ends it (32768 tokens take far longer).
  auto longreq = std::async(std::launch::async, [&] {
    return post_json(srv.port(), "/v1/completions",
                     json{{"prompt", "Once upon a time"}, {"max_tokens", 100000}, {"temperature", 0},
                          {"logit_bias", {{eos, -100}}}});
  });
  // Wait until it holds the sequence.
  for (int i = 0; i < 200; ++i) {
    if (metric(metrics_text(srv.port()), "tandem_sequences_busy") == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto r = post_json(srv.port(), "/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}});
  EXPECT_EQ(r.status, 503) << r.raw;
  EXPECT_EQ(r.body["error"]["code"], "queue_full");
  bool retry_after = false;
  for (const auto& [k, v] : r.headers) retry_after = retry_after || k == "Retry-After";
  EXPECT_TRUE(retry_after);
  JsonReply lr = longreq.get();
  EXPECT_EQ(lr.status, 408) << lr.raw;
  EXPECT_EQ(lr.body["error"]["type"], "timeout_error");
  // Afterwards the sequence is free again.
  auto ok = post_json(srv.port(), "/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}});
  EXPECT_EQ(ok.status, 200) << ok.raw;
}

}  // namespace
}  // namespace tandem::test
