// Property tests: long random sequences of memory operations (decode with
// shared rows, injected failures, seq_rm whole/suffix/range, seq_cp, seq_keep,
// seq_add/seq_div, snapshots, save/load, corrupt files) checked after every
// step against toy::Reference, which keeps each sequence's full history and
// knows nothing about cells, slots or sharing.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "toy.h"

namespace tandem::memory {
namespace {

using toy::Entry;
using toy::Reference;
using toy::ToyModel;

struct Config {
  const char* name;
  std::vector<LayerSpec> specs;
  DType kv_type;
};

std::vector<uint8_t> dump(const HybridMemory& m) {
  auto r = m.serialize("fp");
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : std::vector<uint8_t>{};
}

class Runner {
 public:
  Runner(const Config& cfg, uint32_t seed)
      : cfg_(cfg), rng_(seed), model_(cfg.specs), ref_(cfg.specs, kSeq) {
    opts_.n_ctx = 40;
    opts_.n_seq_max = kSeq;
    opts_.n_ubatch = 1 + static_cast<int>(rng_() % 7);
    opts_.kv_type = cfg.kv_type;
    opts_.snapshot_slots = 3;
    auto m = HybridMemory::create(cfg.specs, opts_);
    EXPECT_TRUE(m.is_ok());
    mem_ = std::move(*m);
    group_.assign(kSeq, -1);
  }

  bool has_rec() const { return mem_->has_recurrent(); }
  int rnd(int n) { return static_cast<int>(rng_() % static_cast<uint32_t>(n)); }
  int32_t next_pos(int s) const {
    int32_t p = -1;
    for (const Entry& e : ref_.hist(s)) p = std::max(p, e.pos);
    return p + 1;
  }
  bool empty(int s) const { return ref_.hist(s).empty(); }

  // ------------------------------------------------------------ decode
  struct Row { std::vector<int32_t> seqs; int32_t tok, pos; uint8_t out; };

  std::vector<Row> make_rows() {
    const int k = 1 + rnd(3);
    std::vector<int> seqs;
    while (static_cast<int>(seqs.size()) < k) {
      int s = rnd(kSeq);
      if (std::find(seqs.begin(), seqs.end(), s) == seqs.end()) seqs.push_back(s);
    }
    std::map<int, int32_t> pos;
    for (int s : seqs) pos[s] = empty(s) ? rnd(3) : next_pos(s);
    // queues: an optional shared run first, then one run per sequence
    std::vector<std::vector<Row>> queues;
    std::vector<std::vector<int>> deps;  // queue indices that must finish first
    int shared_q = -1;
    std::vector<int32_t> shared_set;
    if (seqs.size() >= 2 && rnd(3) == 0) {
      const int a = seqs[0], b = seqs[1];
      if (group_[a] == group_[b] && (empty(a) || next_pos(a) == next_pos(b))) {
        if (empty(a)) pos[b] = pos[a];
        shared_set = {std::min(a, b), std::max(a, b)};
        std::vector<Row> q;
        const int n = 1 + rnd(4);
        for (int t = 0; t < n; ++t) q.push_back({shared_set, rnd(500), pos[a] + t, uint8_t(rnd(2))});
        pos[a] += n;
        pos[b] += n;
        shared_q = 0;
        queues.push_back(std::move(q));
        deps.push_back({});
      }
    }
    for (int s : seqs) {
      std::vector<Row> q;
      const int n = rnd(shared_q >= 0 ? 3 : 6) + (shared_q >= 0 ? 0 : 1);
      for (int t = 0; t < n; ++t) q.push_back({{s}, rnd(500), pos[s] + t, uint8_t(rnd(2))});
      if (q.empty()) continue;
      const bool in_shared = std::find(shared_set.begin(), shared_set.end(), s) != shared_set.end();
      queues.push_back(std::move(q));
      deps.push_back(in_shared ? std::vector<int>{shared_q} : std::vector<int>{});
    }
    std::vector<size_t> head(queues.size(), 0);
    std::vector<Row> rows;
    for (;;) {
      std::vector<int> ready;
      for (size_t q = 0; q < queues.size(); ++q) {
        if (head[q] == queues[q].size()) continue;
        bool ok = true;
        for (int d : deps[q]) ok = ok && head[d] == queues[d].size();
        if (ok) ready.push_back(static_cast<int>(q));
      }
      if (ready.empty()) break;
      const int q = ready[rnd(static_cast<int>(ready.size()))];
      rows.push_back(queues[q][head[q]++]);
    }
    return rows;
  }

  static Batch to_batch(const std::vector<Row>& rows) {
    Batch b;
    for (const Row& r : rows) {
      b.tokens.push_back(r.tok);
      b.pos.push_back(r.pos);
      b.seq.push_back(r.seqs);
      b.output.push_back(r.out);
    }
    return b;
  }

  void op_decode(bool inject) {
    std::vector<Row> rows = make_rows();
    Batch b = to_batch(rows);
    const auto before = dump(*mem_);
    const bool fits = static_cast<int>(rows.size()) <= opts_.n_ctx - mem_->n_cells_used() || !mem_->has_attention();
    int n_ub = 0;
    {
      auto plan = mem_->plan(b);
      ASSERT_EQ(plan.is_ok(), fits) << plan.status().to_string();
      ASSERT_EQ(dump(*mem_), before) << "plan() changed memory";
      if (!plan) {
        EXPECT_EQ(plan.status().code(), StatusCode::kOutOfMemory);
        return;
      }
      n_ub = plan->n_ubatch();
    }
    Reference ref2 = ref_;
    std::vector<float> want;
    for (const Row& r : rows) {
      const float x = ref2.decode_row(r.seqs, r.tok, r.pos);
      if (r.out) want.push_back(x);
    }
    std::vector<float> got;
    const int fail_at = inject ? rnd(n_ub) : -1;
    Status st = toy::decode(*mem_, model_, b, got, fail_at);
    if (inject) {
      ASSERT_EQ(st.code(), StatusCode::kCancelled);
      ASSERT_EQ(dump(*mem_), before) << "rollback after a failure in micro-batch " << fail_at << " of " << n_ub;
      return;
    }
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    ASSERT_EQ(got, want);
    ref_ = std::move(ref2);
    std::map<std::vector<int32_t>, int64_t> ids;
    for (const Row& r : rows) {
      auto it = ids.find(r.seqs);
      if (it == ids.end()) it = ids.emplace(r.seqs, next_group_++).first;
      for (int s : r.seqs) group_[s] = it->second;
    }
    ++n_decodes_;
  }

  void op_invalid() {
    const auto before = dump(*mem_);
    Batch b;
    const int s = rnd(kSeq);
    b.tokens = {1};
    b.output = {1};
    const int kind = rnd(3);
    StatusCode want = StatusCode::kInvalidArgument;
    if (kind == 0) {
      b.pos = {0};
      b.seq = {{kSeq + rnd(3)}};
    } else if (kind == 1) {
      if (empty(s)) return;
      b.pos = {next_pos(s) + 1 + rnd(3)};
      b.seq = {{s}};
    } else {
      if (!has_rec()) return;
      int a = -1, c = -1;
      for (int x = 0; x < kSeq && a < 0; ++x)
        for (int y = x + 1; y < kSeq; ++y)
          if (!empty(x) && !empty(y) && group_[x] != group_[y] && next_pos(x) == next_pos(y)) {
            a = x;
            c = y;
            break;
          }
      if (a < 0) return;
      b.pos = {next_pos(a)};
      b.seq = {{a, c}};
    }
    auto plan = mem_->plan(b);
    ASSERT_FALSE(plan.is_ok()) << "kind " << kind;
    EXPECT_EQ(plan.status().code(), want) << plan.status().to_string();
    ASSERT_EQ(dump(*mem_), before);
  }

  // ------------------------------------------------------------ sequence ops
  void replay(int s, const RmOutcome& o) {
    if (!o.needs_replay()) return;
    Batch b;
    std::vector<float> want;
    for (const Entry& e : ref_.hist(s)) {
      if (e.pos < o.replay_from || e.pos >= o.replay_end) continue;
      b.tokens.push_back(e.tok);
      b.pos.push_back(e.pos);
      b.seq.push_back({s});
      b.output.push_back(1);
      want.push_back(e.out);
    }
    std::vector<float> got;
    Status st = toy::decode(*mem_, model_, b, got);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    ASSERT_EQ(got, want) << "replayed outputs differ from the first run";
    ++n_replays_;
  }

  void op_rm_suffix() {
    const int s = rnd(kSeq);
    if (empty(s)) return;
    auto& H = ref_.hist(s);
    const int32_t p0 = H.front().pos + rnd(static_cast<int>(H.size()) + 1);
    auto out = mem_->seq_rm(s, p0, -1);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    const int32_t old_end = H.back().pos + 1;
    const int32_t origin = H.front().pos;
    H.erase(std::remove_if(H.begin(), H.end(), [&](const Entry& e) { return e.pos >= p0; }), H.end());
    group_[s] = H.empty() ? -1 : next_group_++;
    if (!has_rec() || H.empty()) {
      ASSERT_FALSE(out->needs_replay());
      return;
    }
    if (out->needs_replay()) {
      ASSERT_GE(out->replay_from, origin);
      ASSERT_EQ(out->replay_end, std::min(p0, old_end));
      if (mem_->has_attention() || mem_->seq_pos_max_rec(s) >= 0) {
        ASSERT_EQ(mem_->seq_next_pos(s), out->replay_from);
      }
    }
    replay(s, *out);
  }

  void op_rm_range() {
    const int s = rnd(kSeq);
    if (empty(s)) return;
    auto& H = ref_.hist(s);
    const int32_t p0 = H.front().pos + 1 + rnd(static_cast<int>(H.size()));
    const int32_t p1 = p0 + 1 + rnd(3);
    const bool inside = p1 <= next_pos(s) - 1;  // a true middle range
    const auto before = dump(*mem_);
    auto out = mem_->seq_rm(s, p0, p1);
    if (has_rec() && inside) {
      ASSERT_FALSE(out.is_ok());
      EXPECT_EQ(out.status().code(), StatusCode::kUnsupported);
      ASSERT_EQ(dump(*mem_), before);
      return;
    }
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    H.erase(std::remove_if(H.begin(), H.end(), [&](const Entry& e) { return e.pos >= p0 && e.pos < p1; }), H.end());
    group_[s] = H.empty() ? -1 : next_group_++;
    replay(s, *out);
  }

  void op_rm_whole() {
    const int s = rnd(kSeq);
    auto out = mem_->seq_rm(s, -1, -1);
    ASSERT_TRUE(out.is_ok());
    ASSERT_FALSE(out->needs_replay());
    ref_.hist(s).clear();
    group_[s] = -1;
    ASSERT_TRUE(mem_->seq_empty(s));
  }

  void op_cp() {
    const int a = rnd(kSeq), b = rnd(kSeq);
    ASSERT_TRUE(mem_->seq_cp(a, b).is_ok());
    if (a == b) return;
    ref_.hist(b) = ref_.hist(a);
    group_[b] = group_[a];
  }

  void op_keep() {
    const int s = rnd(kSeq);
    ASSERT_TRUE(mem_->seq_keep(s).is_ok());
    for (int t = 0; t < kSeq; ++t)
      if (t != s) {
        ref_.hist(t).clear();
        group_[t] = -1;
      }
  }

  void op_shift() {  // attention-only configurations
    const int s = rnd(kSeq);
    if (empty(s)) return;
    auto& H = ref_.hist(s);
    const int32_t p0 = H.front().pos + rnd(static_cast<int>(H.size()) + 1);
    const auto before = dump(*mem_);
    if (rnd(3) == 0) {
      const int d = 2 + rnd(2);
      Status st = mem_->seq_div(s, p0, -1, d);
      if (st.code() == StatusCode::kOutOfMemory) {
        ASSERT_EQ(dump(*mem_), before);
        return;
      }
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      for (Entry& e : H)
        if (e.pos >= p0) e.pos /= d;
    } else {
      const int32_t delta = rnd(7) - 3;
      std::multiset<int32_t> after;
      for (const Entry& e : H) {
        const int32_t np = e.pos >= p0 ? e.pos + delta : e.pos;
        if (np >= 0) after.insert(np);
      }
      bool dup = false;
      for (auto it = after.begin(); it != after.end(); ++it)
        if (after.count(*it) > 1) dup = true;
      // Duplicates already present (from seq_div) are not the shift's doing.
      std::multiset<int32_t> prior;
      for (const Entry& e : H) prior.insert(e.pos);
      bool prior_dup = false;
      for (auto p : prior)
        if (prior.count(p) > 1) prior_dup = true;
      Status st = mem_->seq_add(s, p0, -1, delta);
      if (st.code() == StatusCode::kOutOfMemory || (prior_dup && !st.is_ok())) {
        ASSERT_EQ(dump(*mem_), before);
        return;
      }
      if (!prior_dup && dup && delta != 0) {
        ASSERT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
        ASSERT_EQ(dump(*mem_), before);
        return;
      }
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      for (Entry& e : H)
        if (e.pos >= p0) e.pos += delta;
      H.erase(std::remove_if(H.begin(), H.end(), [](const Entry& e) { return e.pos < 0; }), H.end());
    }
    group_[s] = H.empty() ? -1 : next_group_++;
  }

  void op_snapshot() {
    const int s = rnd(kSeq);
    auto id = mem_->snapshot(s);
    if (empty(s)) {
      ASSERT_FALSE(id.is_ok());
      return;
    }
    ASSERT_TRUE(id.is_ok()) << id.status().to_string();
    snaps_[*id] = ref_.hist(s);
    int live = 0;
    for (auto& [sid, h] : snaps_) live += mem_->snapshot_pos(sid) >= 0;
    ASSERT_LE(live, opts_.snapshot_slots);
  }

  void op_restore(bool release) {
    if (snaps_.empty()) return;
    auto it = snaps_.begin();
    std::advance(it, rnd(static_cast<int>(snaps_.size())));
    if (release) {
      Status st = mem_->release(it->first);
      ASSERT_TRUE(st.is_ok() || st.code() == StatusCode::kNotFound);
      snaps_.erase(it);
      return;
    }
    const int s = rnd(kSeq);
    Status st = mem_->restore(s, it->first);
    if (st.code() == StatusCode::kNotFound) {  // evicted (LRU)
      snaps_.erase(it);
      return;
    }
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    ref_.hist(s) = it->second;
    group_[s] = next_group_++;
    ++n_restores_;
  }

  void op_save_load() {
    const auto bytes = dump(*mem_);
    auto m2 = HybridMemory::create(cfg_.specs, opts_);
    ASSERT_TRUE(m2.is_ok());
    ASSERT_TRUE((*m2)->deserialize(bytes, "fp").is_ok());
    ASSERT_EQ(dump(**m2), bytes) << "save/load is not the identity";
    // Damaged copies are refused and leave memory as it was.
    std::vector<uint8_t> bad = bytes;
    bad[rnd(static_cast<int>(bad.size()))] ^= static_cast<uint8_t>(1 + rnd(255));
    ASSERT_FALSE(mem_->deserialize(bad, "fp").is_ok());
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + rnd(static_cast<int>(bytes.size())));
    ASSERT_FALSE(mem_->deserialize(cut, "fp").is_ok());
    ASSERT_FALSE(mem_->deserialize(bytes, "other model").is_ok());
    ASSERT_EQ(dump(*mem_), bytes);
    if (rnd(2)) mem_ = std::move(*m2);
  }

  void op_seq_save_load() {
    const int s = rnd(kSeq), t = rnd(kSeq);
    if (empty(s) || !empty(t) || s == t) return;
    auto bytes = mem_->serialize_seq(s, "fp");
    ASSERT_TRUE(bytes.is_ok());
    const auto before = dump(*mem_);
    std::vector<uint8_t> bad = *bytes;
    bad[rnd(static_cast<int>(bad.size()))] ^= 0x40;
    ASSERT_FALSE(mem_->deserialize_seq(bad, t, "fp").is_ok());
    ASSERT_EQ(dump(*mem_), before);
    Status st = mem_->deserialize_seq(*bytes, t, "fp");
    if (st.code() == StatusCode::kOutOfMemory) {
      ASSERT_EQ(dump(*mem_), before);
      return;
    }
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    ref_.hist(t) = ref_.hist(s);
    group_[t] = next_group_++;
  }

  void run(int steps) {
    for (int step = 0; step < steps; ++step) {
      const int op = rnd(100);
      const bool attn_only = !has_rec();
      if (op < 38) op_decode(false);
      else if (op < 46) op_decode(true);
      else if (op < 50) op_invalid();
      else if (op < 54) op_rm_whole();
      else if (op < 62) op_rm_suffix();
      else if (op < 66) op_rm_range();
      else if (op < 72) op_cp();
      else if (op < 74) op_keep();
      else if (op < 79) { if (attn_only) op_shift(); }
      else if (op < 86) op_snapshot();
      else if (op < 91) op_restore(false);
      else if (op < 93) op_restore(true);
      else if (op < 96) op_save_load();
      else op_seq_save_load();
      if (::testing::Test::HasFatalFailure()) {
        ADD_FAILURE() << cfg_.name << ": failed at step " << step << " (op " << op << ")";
        return;
      }
      const std::string diff = toy::compare(*mem_, ref_);
      if (!diff.empty()) {
        ADD_FAILURE() << cfg_.name << ": step " << step << " (op " << op << "): " << diff;
        return;
      }
    }
  }

  static constexpr int kSeq = 4;
  int n_decodes_ = 0, n_replays_ = 0, n_restores_ = 0;

 private:
  Config cfg_;
  std::mt19937 rng_;
  ToyModel model_;
  Reference ref_;
  MemoryOptions opts_;
  std::unique_ptr<HybridMemory> mem_;
  std::vector<int64_t> group_;
  int64_t next_group_ = 1;
  std::map<uint64_t, std::vector<Entry>> snaps_;
};

std::vector<Config> configs() {
  using namespace toy;
  LayerSpec none;
  return {
      {"attention-f32", {attn_layer(), none, attn_layer(1, 8)}, DType::F32},
      {"attention-f16", {attn_layer(2, 2)}, DType::F16},
      {"recurrent", {rec_layer(), rec_layer(5, 2, 1, 3, 2)}, DType::F16},
      {"hybrid", {rec_layer(), attn_layer(), none, both_layer(), rec_layer(4, 3, 2, 1, 2)}, DType::F32},
      {"hybrid-f16", {both_layer(), rec_layer(3, 1, 1, 2, 2), attn_layer()}, DType::F16},
  };
}

class MemoryProperty : public ::testing::TestWithParam<int> {};

TEST_P(MemoryProperty, RandomOperationsMatchReference) {
  const Config cfg = configs()[GetParam()];
  int decodes = 0, replays = 0, restores = 0;
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    Runner r(cfg, seed * 7919u + GetParam());
    r.run(300);
    decodes += r.n_decodes_;
    replays += r.n_replays_;
    restores += r.n_restores_;
    if (HasFailure()) return;
  }
  // The generator must actually exercise the paths it claims to.
  EXPECT_GT(decodes, 300);
  if (GetParam() >= 2) {
    EXPECT_GT(replays, 30);  // the configurations with recurrent layers
  }
  EXPECT_GT(restores, 30);
}

INSTANTIATE_TEST_SUITE_P(Configs, MemoryProperty, ::testing::Range(0, 5),
                         [](const auto& info) {
                           std::string n = configs()[info.param].name;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace tandem::memory
