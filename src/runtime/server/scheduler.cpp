// The continuous-batching decode loop (see scheduler.h).
#include "runtime/server/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include <fmt/format.h>

#include "runtime/server/text.h"

namespace tandem::server {

using Clock = std::chrono::steady_clock;

void Metrics::count_status(int status) {
  std::lock_guard<std::mutex> lk(m_);
  ++by_status_[status];
}

std::map<int, uint64_t> Metrics::statuses() const {
  std::lock_guard<std::mutex> lk(m_);
  return by_status_;
}

void Metrics::set_cache(const PrefixCache::Stats& s) {
  std::lock_guard<std::mutex> lk(m_);
  cache_ = s;
}

PrefixCache::Stats Metrics::cache() const {
  std::lock_guard<std::mutex> lk(m_);
  return cache_;
}

bool Ticket::pop(Update& out, std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lk(m_);
  if (!cv_.wait_for(lk, wait, [&] { return !q_.empty(); })) return false;
  out = std::move(q_.front());
  q_.pop_front();
  return true;
}

void Ticket::push(Update u) {
  {
    std::lock_guard<std::mutex> lk(m_);
    q_.push_back(std::move(u));
  }
  cv_.notify_all();
}

// One generated continuation: its own sequence id, sampler, detokenizer and stop matcher.
struct Scheduler::Choice {
  int seq = -1;
  Sampler sampler;
  TextStream stream;
  StopMatcher stopper;
  int32_t last = -1;  // sampled, not yet decoded
  int pos = 0;        // position `last` will be decoded at
  int n_gen = 0;
  bool done = false;
  std::string sent;      // text sent so far (before this step's update)
  PrefixCache::Ref ref;  // prefix-cache lineage of `seq` (what its cells share)
  Choice(int s, const SamplerOptions& so, const Model& m, bool strip, std::vector<std::string> stops)
      : seq(s), sampler(so), stream(m, strip), stopper(std::move(stops)) {}
};

struct Scheduler::Active {
  Job job;
  std::shared_ptr<Ticket> ticket;
  std::vector<Choice> choices;
  int prefilled = 0;  // prompt tokens decoded so far (into choices[0].seq)
  bool prefilling = true;
  int completion_tokens = 0;
  int cached = 0;  // prompt tokens restored from the prefix cache
  bool warm = false;  // the reply is sent; now encoding job.prompt = the next turn's prefix
  bool finished = false;
};

Scheduler::Scheduler(Context& ctx, Options opts, Metrics& metrics, PrefixCache* cache)
    : ctx_(ctx), opts_(opts), metrics_(metrics), cache_(cache && cache->enabled() ? cache : nullptr),
      recurrent_(ctx.model().kind() != ModelKind::kAttentionOnly), free_seqs_(opts.parallel) {
  for (int s = opts_.parallel - 1; s >= 0; --s) free_list_.push_back(s);
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::stop() {
  {
    std::lock_guard<std::mutex> lk(m_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::variant<std::shared_ptr<Ticket>, ApiError> Scheduler::submit(Job job) {
  if (job.n < 1 || job.n > opts_.parallel)
    return invalid_request(fmt::format("'n' = {} exceeds the {} parallel sequences of this server", job.n,
                                       opts_.parallel),
                           "invalid_value", "n");
  if (job.prompt.empty()) return invalid_request("the prompt is empty", "invalid_value", "prompt");
  if (static_cast<int>(job.prompt.size()) > opts_.ctx_per_seq)
    return invalid_request(fmt::format("the prompt has {} tokens but the context window is {} tokens",
                                       job.prompt.size(), opts_.ctx_per_seq),
                           "context_length_exceeded", "prompt");
  auto ticket = std::make_shared<Ticket>();
  {
    std::lock_guard<std::mutex> lk(m_);
    if (stop_) {
      ApiError e{503, "the server is shutting down", "server_error", "shutting_down", ""};
      return e;
    }
    // Room for `queue` waiting requests beyond those that can start right away.
    const int capacity = opts_.queue + std::max(0, free_seqs_.load());
    if (static_cast<int>(queue_.size()) >= capacity) {
      ApiError e{503, fmt::format("the request queue is full ({} waiting); retry later", queue_.size()),
                 "server_error", "queue_full", ""};
      return e;
    }
    queue_.push_back({std::move(job), ticket});
    metrics_.queued.store(static_cast<int>(queue_.size()));
  }
  cv_.notify_all();
  return ticket;
}

void Scheduler::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(m_);
      cv_.wait_for(lk, std::chrono::milliseconds(active_.empty() ? 200 : 0),
                   [&] { return stop_ || !queue_.empty() || !active_.empty(); });
      if (stop_) break;
    }
    step();
  }
  // Shutting down: fail whatever is left.
  ApiError e{503, "the server is shutting down", "server_error", "shutting_down", ""};
  for (auto& a : active_) fail(*a, e);
  active_.clear();
  std::lock_guard<std::mutex> lk(m_);
  for (auto& p : queue_) {
    Update u;
    u.done = true;
    u.error = e;
    p.ticket->push(std::move(u));
  }
  queue_.clear();
}

void Scheduler::admit() {
  const auto now = Clock::now();
  std::lock_guard<std::mutex> lk(m_);
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->ticket->cancelled()) {
      it = queue_.erase(it);
    } else if (now > it->job.deadline) {
      Update u;
      u.done = true;
      u.error = ApiError{408, "the request timed out while waiting for a free sequence", "timeout_error",
                         "request_timeout", ""};
      it->ticket->push(std::move(u));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  // FIFO: the head waits until it has all the sequences it needs.
  while (!queue_.empty() && static_cast<int>(free_list_.size()) >= queue_.front().job.n) {
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    auto a = std::make_unique<Active>();
    a->ticket = std::move(p.ticket);
    a->job = std::move(p.job);
    for (int i = 0; i < a->job.n; ++i) {
      const int s = free_list_.back();
      free_list_.pop_back();
      SamplerOptions so = a->job.sampling;
      so.seed += static_cast<uint32_t>(i);
      a->choices.emplace_back(s, so, ctx_.model(), a->job.strip_leading_space, a->job.stop);
    }
    if (cache_) {
      // Start from the longest cached prefix; at least the last prompt token
      // is decoded (its logits give the first sampled token).
      const int len = static_cast<int>(a->job.prompt.size());
      a->cached = cache_->restore_longest(a->job.prompt, len - 1, a->choices[0].seq, a->choices[0].ref);
      a->prefilled = a->cached;
      metrics_.cached_prompt_tokens.fetch_add(static_cast<uint64_t>(a->cached));
    }
    active_.push_back(std::move(a));
  }
  free_seqs_.store(static_cast<int>(free_list_.size()));
  metrics_.queued.store(static_cast<int>(queue_.size()));
}

void Scheduler::release(Active& a) {
  for (auto& c : a.choices) {
    if (cache_) cache_->unref(c.ref);
    if (c.seq < 0) continue;
    (void)ctx_.seq_rm(c.seq, -1, -1);  // whole-sequence removal always succeeds
    free_list_.push_back(c.seq);
    c.seq = -1;
  }
  a.finished = true;
  free_seqs_.store(static_cast<int>(free_list_.size()));
  // Before the client hears back (it may read /metrics right after).
  metrics_.sequences_busy.store(opts_.parallel - static_cast<int>(free_list_.size()));
}

void Scheduler::fail(Active& a, const ApiError& e) {
  Update u;
  u.done = true;
  u.error = e;
  release(a);  // free the sequences before the client hears back
  a.ticket->push(std::move(u));
}

void Scheduler::finish_choice(Active& a, size_t ci, const std::string& reason, ChoiceUpdate& upd) {
  Choice& c = a.choices[ci];
  c.done = true;
  upd.finish_reason = reason;
  // This choice's sequence is no longer needed; free it now for waiting
  // requests, after keeping prompt + generation in the prefix cache (the
  // next turn of a conversation starts with them).
  if (cache_ && c.seq >= 0 && start_next_turn(a, ci, c.sent + upd.text)) return;
  if (cache_ && c.seq >= 0) {
    cache_->insert(c.seq, c.ref);
    cache_->unref(c.ref);
  }
  if (c.seq >= 0) {
    (void)ctx_.seq_rm(c.seq, -1, -1);
    free_list_.push_back(c.seq);
    c.seq = -1;
    metrics_.sequences_busy.store(opts_.parallel - static_cast<int>(free_list_.size()));
  }
}

// Samples the next token of choice ci from `logits` [n_vocab] and records the
// resulting text / finish in upd.
void Scheduler::sample_choice(Active& a, size_t ci, const float* logits, ChoiceUpdate& upd) {
  Choice& c = a.choices[ci];
  const int n_vocab = ctx_.n_vocab();
  const int32_t tok = c.sampler.sample(logits, n_vocab);
  if (tok < 0) {
    // A constraint (response_format / tool grammar) allows no token: the output is complete.
    upd.text += c.stopper.push(c.stream.flush());
    upd.text += c.stopper.finish();
    finish_choice(a, ci, "stop", upd);
    return;
  }
  c.sampler.accept(tok);
  const Model& model = ctx_.model();

  if (a.job.logprobs >= 0) {
    // log p = logit - logsumexp(logits): the model's own distribution.
    float mx = -std::numeric_limits<float>::infinity();
    for (int i = 0; i < n_vocab; ++i) mx = std::max(mx, logits[i]);
    double sum = 0;
    for (int i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
    const float lse = mx + static_cast<float>(std::log(sum));
    TokenLogprob lp;
    lp.id = tok;
    lp.piece = model.token_to_piece(tok);
    lp.logprob = logits[tok] - lse;
    if (a.job.logprobs > 0) {
      std::vector<int32_t> idx(static_cast<size_t>(n_vocab));
      std::iota(idx.begin(), idx.end(), 0);
      const int k = std::min(a.job.logprobs, n_vocab);
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t x, int32_t y) {
        return logits[x] != logits[y] ? logits[x] > logits[y] : x < y;
      });
      for (int i = 0; i < k; ++i) lp.top.emplace_back(idx[i], logits[idx[i]] - lse);
    }
    upd.logprobs.push_back(std::move(lp));
  }

  if (model.is_eog(tok)) {
    upd.text += c.stopper.push(c.stream.flush());
    upd.text += c.stopper.finish();
    finish_choice(a, ci, "stop", upd);
    return;
  }
  ++c.n_gen;
  ++a.completion_tokens;
  metrics_.generated_tokens.fetch_add(1);
  upd.text += c.stopper.push(c.stream.push(tok));
  if (c.stopper.stopped()) {
    finish_choice(a, ci, "stop", upd);
    return;
  }
  const bool max_reached = a.job.max_tokens > 0 && c.n_gen >= a.job.max_tokens;
  const bool ctx_full = c.pos >= opts_.ctx_per_seq;  // `tok` would not fit the window
  if (max_reached || ctx_full) {
    upd.text += c.stopper.push(c.stream.flush());
    if (c.stopper.stopped()) {
      finish_choice(a, ci, "stop", upd);
      return;
    }
    upd.text += c.stopper.finish();
    finish_choice(a, ci, "length", upd);
    return;
  }
  c.last = tok;
}

bool Scheduler::step() {
  admit();
  const auto now = Clock::now();
  for (auto& a : active_) {
    if (a->ticket->cancelled()) {
      release(*a);  // the client went away: free its sequences now
    } else if (now > a->job.deadline) {
      fail(*a, ApiError{408, "the request exceeded the server's time limit", "timeout_error", "request_timeout", ""});
    }
  }
  active_.erase(std::remove_if(active_.begin(), active_.end(), [](const auto& a) { return a->finished; }),
                active_.end());
  metrics_.active.store(static_cast<int>(active_.size()));
  metrics_.sequences_busy.store(opts_.parallel - static_cast<int>(free_list_.size()));
  if (active_.empty()) {
    update_memory_metrics();
    return false;
  }

  // ---- build one batch: decode rows first, then prompt chunks in admission order.
  struct Row {
    Active* a;
    int choice;  // -1: the last prompt token of a request
  };
  Batch b;
  std::vector<Row> rows;
  for (auto& a : active_) {
    if (a->prefilling) continue;
    for (size_t ci = 0; ci < a->choices.size(); ++ci) {
      Choice& c = a->choices[ci];
      if (c.done) continue;
      b.add(c.last, c.pos, {c.seq}, true);
      rows.push_back({a.get(), static_cast<int>(ci)});
    }
  }
  const int n_decode = static_cast<int>(b.size());
  int budget = std::max(opts_.batch - n_decode, 16);  // prompts always make progress
  std::vector<std::pair<Active*, int>> advanced;        // prompt tokens added per request
  for (auto& a : active_) {
    if (!a->prefilling || budget <= 0) continue;
    const int len = static_cast<int>(a->job.prompt.size());
    // With the prefix cache a chunk ends at the next snapshot point.
    const int k = std::min(std::min(len, next_snapshot_point(*a)) - a->prefilled, budget);
    for (int i = 0; i < k; ++i) {
      const int p = a->prefilled + i;
      const bool last = p == len - 1;
      b.add(a->job.prompt[p], p, {a->choices[0].seq}, last);
      if (last) rows.push_back({a.get(), -1});
    }
    advanced.emplace_back(a.get(), k);
    budget -= k;
  }
  const int n_prompt = static_cast<int>(b.size()) - n_decode;

  const auto t0 = Clock::now();
  Outcome out = ctx_.decode(b);
  const uint64_t ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
  metrics_.steps.fetch_add(1);
  if (!out) {
    // Nothing changed (decode is all-or-nothing). Blame the requests whose
    // prompt chunks were in the batch if any, else every request in it.
    ApiError e{500, fmt::format("decode failed: {}", out.message()), "server_error", "decode_failed", ""};
    if (out.code() == Errc::kOutOfMemory) e.code = "out_of_memory";
    if (!advanced.empty()) {
      for (auto& [a, k] : advanced) fail(*a, e);
    } else {
      for (auto& a : active_) fail(*a, e);
    }
    active_.erase(std::remove_if(active_.begin(), active_.end(), [](const auto& a) { return a->finished; }),
                  active_.end());
    update_memory_metrics();
    return true;
  }
  int n_warm = 0;
  for (auto& [a, k] : advanced)
    if (a->warm) n_warm += k;
  if (n_prompt > 0) {
    metrics_.prompt_tokens.fetch_add(static_cast<uint64_t>(n_prompt - n_warm));
    metrics_.prompt_ns.fetch_add(ns);
  } else {
    metrics_.generation_ns.fetch_add(ns);
  }
  for (auto& [a, k] : advanced) {
    const int point = cache_ ? next_snapshot_point(*a) : -1;
    a->prefilled += k;
    if (cache_ && a->prefilled == point) cache_->insert(a->choices[0].seq, a->choices[0].ref);
    if (a->warm) metrics_.next_turn_tokens.fetch_add(static_cast<uint64_t>(k));
  }

  // ---- sample: one update per request per step.
  std::map<Active*, Update> updates;
  auto choice_update = [&](Active* a, int ci) -> ChoiceUpdate& {
    Update& u = updates[a];
    for (auto& cu : u.choices)
      if (cu.index == ci) return cu;
    u.choices.push_back({});
    u.choices.back().index = ci;
    return u.choices.back();
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    const float* logits = ctx_.logits(static_cast<int>(i));
    Active* a = rows[i].a;
    if (a->finished) continue;
    if (rows[i].choice < 0) {
      // Prompt done: fork it into the other choices' sequences, then every
      // choice draws its first token from the same logits row.
      a->prefilling = false;
      if (a->warm) {  // the next turn's prefix is encoded (and snapshotted): done
        release(*a);
        continue;
      }
      const int len = static_cast<int>(a->job.prompt.size());
      bool ok = true;
      for (size_t ci = 1; ci < a->choices.size() && ok; ++ci) {
        if (cache_) a->choices[ci].ref = cache_->share(a->choices[0].ref);
        Outcome cp = ctx_.seq_cp(a->choices[0].seq, a->choices[ci].seq);
        if (!cp) {
          fail(*a, ApiError{500, fmt::format("forking the prompt into sequence {} failed: {}", a->choices[ci].seq,
                                             cp.message()),
                            "server_error", "seq_cp_failed", ""});
          ok = false;
        }
      }
      if (!ok) continue;
      for (size_t ci = 0; ci < a->choices.size(); ++ci) {
        a->choices[ci].pos = len;
        sample_choice(*a, ci, logits, choice_update(a, static_cast<int>(ci)));
      }
    } else {
      Choice& c = a->choices[static_cast<size_t>(rows[i].choice)];
      ++c.pos;
      sample_choice(*a, static_cast<size_t>(rows[i].choice), logits, choice_update(a, rows[i].choice));
    }
  }
  // (Active objects of finished requests are destroyed below: keep the tickets.)
  std::vector<std::pair<std::shared_ptr<Ticket>, Update>> replies;
  for (auto& [a, u] : updates) {
    if (a->finished) continue;
    const bool all_done = std::all_of(a->choices.begin(), a->choices.end(), [](const Choice& c) { return c.done; });
    u.prompt_tokens = static_cast<int>(a->job.prompt.size());
    u.completion_tokens = a->completion_tokens;
    u.cached_tokens = a->cached;
    u.done = all_done;
    for (auto& cu : u.choices) a->choices[static_cast<size_t>(cu.index)].sent += cu.text;
    if (all_done && !a->warm) release(*a);  // free the sequences before the client hears back
    replies.emplace_back(a->ticket, std::move(u));
  }
  active_.erase(std::remove_if(active_.begin(), active_.end(), [](const auto& a) { return a->finished; }),
                active_.end());
  metrics_.active.store(static_cast<int>(active_.size()));
  metrics_.sequences_busy.store(opts_.parallel - static_cast<int>(free_list_.size()));
  update_memory_metrics();
  // Clients hear back once /metrics already shows their sequences released.
  for (auto& [ticket, u] : replies) ticket->push(std::move(u));
  return true;
}

// Memory in use, read from the Context's memory itself (cells pinned by
// prefix-cache snapshots included; forked choices' shared cells counted once).
void Scheduler::update_memory_metrics() {
  metrics_.kv_cells.store(ctx_.n_cells_used());
  metrics_.recurrent_slots.store(ctx_.n_slots_used());
  metrics_.snapshots.store(ctx_.n_snapshots());
  if (cache_) metrics_.set_cache(cache_->stats());
}

// The prompt length at which the next prefix-cache snapshot of `a` is taken:
// the next chat boundary, multiple of snapshot_every, or the end of the prompt.
int Scheduler::next_snapshot_point(const Active& a) const {
  const int len = static_cast<int>(a.job.prompt.size());
  int next = len;
  if (!cache_) return next;
  if (opts_.snapshot_every > 0) next = std::min(next, (a.prefilled / opts_.snapshot_every + 1) * opts_.snapshot_every);
  for (int p : a.job.snapshot_points)
    if (p > a.prefilled) {
      next = std::min(next, p);
      break;
    }
  return next;
}

// A finished chat reply (n = 1, prefix cache on): unless the tokens held are
// exactly the next turn's prefix (job.next_turn), restart the sequence from
// the deepest cached prefix of that prefix and queue the rest as a prompt; the
// request becomes `warm` (its client already has the answer) and is released
// once the prefix is encoded and snapshotted. False: nothing to do (the caller
// caches the generation and frees the sequence as usual).
bool Scheduler::start_next_turn(Active& a, size_t ci, const std::string& reply) {
  Choice& c = a.choices[ci];
  if (!a.job.next_turn || a.choices.size() != 1 || a.ticket->cancelled() || metrics_.queued.load() > 0) return false;
  std::vector<int32_t> next = a.job.next_turn(reply);
  const int len = static_cast<int>(next.size());
  if (len < 2 || len > opts_.ctx_per_seq || next == ctx_.seq_tokens(c.seq)) return false;
  // Keep the raw generation cached too (a client may continue from it).
  cache_->insert(c.seq, c.ref);
  cache_->unref(c.ref);
  (void)ctx_.seq_rm(c.seq, -1, -1);  // whole-sequence removal always succeeds
  a.prefilled = cache_->restore_longest(next, len - 1, c.seq, c.ref);
  a.warm = true;
  a.job.prompt = std::move(next);
  a.job.snapshot_points.clear();
  a.prefilling = true;
  return true;
}

}  // namespace tandem::server
