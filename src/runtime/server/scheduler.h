#pragma once
// The decode loop of `tandem serve`: ONE thread owns the Context and, at every
// step, decodes in a single batch the next token of every running choice plus
// prompt chunks of newly admitted requests (continuous batching). Each choice
// holds one sequence id of the Context; a request with n choices prefills its
// prompt once and forks it with seq_cp. Requests wait in a bounded FIFO queue
// while every sequence is busy. HTTP threads talk to the loop through Tickets.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "runtime/prefix_cache.h"
#include "runtime/server/api.h"
#include "tandem/tandem.h"

namespace tandem::server {

// Counters behind /metrics. Written by the decode loop and the HTTP threads.
struct Metrics {
  std::atomic<uint64_t> prompt_tokens{0}, generated_tokens{0};
  std::atomic<uint64_t> prompt_ns{0}, generation_ns{0};  // decode time of steps with / without prefill
  std::atomic<int> active{0}, queued{0}, sequences_busy{0};
  // Read from the Context's memory after every step (cells include those
  // pinned by prefix-cache snapshots).
  std::atomic<int> kv_cells{0}, recurrent_slots{0}, snapshots{0};
  std::atomic<uint64_t> steps{0};
  std::atomic<uint64_t> cached_prompt_tokens{0};  // prompt tokens restored from the prefix cache
  std::atomic<uint64_t> next_turn_tokens{0};      // tokens re-encoded for a conversation's next turn
  // HTTP connections (ConnectionPool): workers in all / busy, connections
  // waiting for one, connections handed to the overflow lane, and requests
  // the lane answered 503 server_overloaded.
  std::atomic<int> http_workers{0}, http_busy{0}, http_waiting{0};
  std::atomic<uint64_t> http_overflowed{0}, overload_rejected{0};

  void count_status(int status);
  std::map<int, uint64_t> statuses() const;
  void set_cache(const PrefixCache::Stats& s);
  PrefixCache::Stats cache() const;

 private:
  mutable std::mutex m_;
  std::map<int, uint64_t> by_status_;
  PrefixCache::Stats cache_;
};

struct TokenLogprob {
  int32_t id = 0;
  std::string piece;   // the token's bytes
  float logprob = 0;   // log p under the model's distribution (softmax of the raw logits)
  std::vector<std::pair<int32_t, float>> top;  // most likely alternatives, best first
};

struct ChoiceUpdate {
  int index = 0;
  std::string text;                    // new text (stop strings withheld)
  std::vector<TokenLogprob> logprobs;  // one per new token when logprobs were asked for
  std::string finish_reason;           // "" while running, else "stop" / "length"
};

// One message from the loop to the HTTP side.
struct Update {
  std::vector<ChoiceUpdate> choices;
  bool done = false;                 // last update of the request
  std::optional<ApiError> error;     // set: the request failed (done is true)
  int prompt_tokens = 0, completion_tokens = 0;
  int cached_tokens = 0;             // prompt tokens restored from the prefix cache
};

// The channel between one request's HTTP thread and the decode loop.
class Ticket {
 public:
  // Waits up to `wait` for the next update; false when none arrived.
  bool pop(Update& out, std::chrono::milliseconds wait);
  void push(Update u);
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Update> q_;
  std::atomic<bool> cancelled_{false};
};

struct Job {
  std::vector<int32_t> prompt;  // token ids, BOS included when the model wants one
  // Extra prefix-cache snapshot points (prompt lengths, ascending), e.g. chat
  // message boundaries; the end of the prompt always is one.
  std::vector<int> snapshot_points;
  // Chat with the prefix cache (n = 1): the tokens the NEXT turn's prompt will
  // start with, given this turn's reply text (the conversation so far plus the
  // reply, rendered with the chat template). After the reply is sent, the
  // sequence is cut back to where its tokens and these agree and the rest is
  // decoded and snapshotted, so the next turn processes only its new message
  // (generated tokens rarely equal the template's re-tokenization of the reply).
  std::function<std::vector<int32_t>(const std::string& reply)> next_turn;
  SamplerOptions sampling;      // choice i uses seed + i
  int n = 1;
  int max_tokens = -1;          // -1: until the context window is full
  std::vector<std::string> stop;
  int logprobs = -1;            // -1: none; k >= 0: logprob of each token plus k alternatives
  bool strip_leading_space = false;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

class Scheduler {
 public:
  struct Options {
    int parallel = 4;      // sequences of the Context (n_seq_max)
    int ctx_per_seq = 0;   // positions one sequence may hold
    int queue = 64;        // requests that may wait for a free sequence
    int batch = 256;       // tokens per decode step (prefill chunks fill what decoding leaves)
    int snapshot_every = 0;  // prefix cache: also snapshot every N prompt tokens (0: no)
  };
  // `cache` (may be null: no prefix reuse) is used by the decode loop only.
  Scheduler(Context& ctx, Options opts, Metrics& metrics, PrefixCache* cache = nullptr);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a job; fails with 503 (Retry-After) when the queue is full and
  // with 400 when the job needs more sequences or positions than exist.
  std::variant<std::shared_ptr<Ticket>, ApiError> submit(Job job);
  void stop();
  const Options& options() const { return opts_; }

 private:
  struct Choice;
  struct Active;
  struct Pending {
    Job job;
    std::shared_ptr<Ticket> ticket;
  };
  void loop();
  bool step();  // false when there was nothing to do
  void admit();
  void finish_choice(Active& a, size_t ci, const std::string& reason, ChoiceUpdate& upd);
  void release(Active& a);
  void fail(Active& a, const ApiError& e);
  void sample_choice(Active& a, size_t ci, const float* logits, ChoiceUpdate& upd);
  void update_memory_metrics();
  int next_snapshot_point(const Active& a) const;
  bool start_next_turn(Active& a, size_t ci, const std::string& reply);

  Context& ctx_;
  Options opts_;
  Metrics& metrics_;
  PrefixCache* cache_ = nullptr;
  const bool recurrent_;

  std::mutex m_;  // guards queue_ and stop_
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stop_ = false;
  std::atomic<int> free_seqs_;

  // Decode-loop state (only the loop thread touches these).
  std::vector<int> free_list_;
  std::vector<std::unique_ptr<Active>> active_;
  std::thread thread_;
};

}  // namespace tandem::server
