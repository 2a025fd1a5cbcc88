// The radix-tree prefix cache (see prefix_cache.h).
#include "runtime/prefix_cache.h"

#include <algorithm>

namespace tandem {

struct PrefixCache::Node {
  std::vector<int32_t> edge;  // tokens from the parent to this node
  Node* parent = nullptr;
  std::map<int32_t, std::unique_ptr<Node>> children;  // keyed by the first token of their edge
  int depth = 0;              // tokens from the root to the end of this node
  int64_t snap = -1;          // Context snapshot of exactly `depth` tokens, -1 when none
  int charged = 0;            // attention cells charged to that snapshot
  int refs = 0;
  uint64_t last_use = 0;
};

int PrefixCache::Ref::depth() const { return node_ ? node_->depth : 0; }

PrefixCache::PrefixCache(Context& ctx, Options opts)
    : ctx_(ctx), opts_(opts), cell_bytes_(ctx.cell_bytes()), state_bytes_(ctx.state_bytes()),
      root_(std::make_unique<Node>()) {
  opts_.max_snapshots = std::min(opts_.max_snapshots, ctx.options().snapshot_slots);
}

PrefixCache::~PrefixCache() = default;

void PrefixCache::touch(Node* n) { n->last_use = ++clock_; }

int PrefixCache::restore_longest(std::span<const int32_t> tokens, int max_len, int seq, Ref& ref) {
  if (!enabled()) return 0;
  ++st_.lookups;
  max_len = std::min<int>(max_len, static_cast<int>(tokens.size()));
  // Walk down while the tokens match; remember the deepest snapshot.
  Node* best = nullptr;
  int matched = 0;
  Node* n = root_.get();
  while (matched < max_len) {
    auto it = n->children.find(tokens[static_cast<size_t>(matched)]);
    if (it == n->children.end()) break;
    Node* c = it->second.get();
    size_t k = 0;
    while (k < c->edge.size() && matched + static_cast<int>(k) < max_len &&
           c->edge[k] == tokens[static_cast<size_t>(matched) + k])
      ++k;
    matched += static_cast<int>(k);
    if (k < c->edge.size()) break;  // diverged (or reached max_len) inside the edge
    n = c;
    if (n->snap >= 0) best = n;
  }
  // Deepest first: a snapshot the memory lost is skipped (and forgotten).
  while (best) {
    if (ctx_.restore(seq, best->snap)) {
      touch(best);
      ++best->refs;
      ref.node_ = best;
      ++st_.hits;
      st_.reused_tokens += static_cast<uint64_t>(best->depth);
      st_.recomputed_tokens += static_cast<uint64_t>(matched - best->depth);
      return best->depth;
    }
    Node* up = best->parent;
    best->snap = -1;
    --st_.snapshots;
    st_.cells -= best->charged;
    best->charged = 0;
    while (up && up->snap < 0) up = up->parent;
    best = up;
  }
  st_.recomputed_tokens += static_cast<uint64_t>(matched);
  return 0;
}

PrefixCache::Node* PrefixCache::find_exact(std::span<const int32_t> path) const {
  Node* n = root_.get();
  size_t at = 0;
  while (at < path.size()) {
    auto it = n->children.find(path[at]);
    if (it == n->children.end()) return nullptr;
    Node* c = it->second.get();
    if (c->edge.size() > path.size() - at || !std::equal(c->edge.begin(), c->edge.end(), path.begin() + at))
      return nullptr;
    at += c->edge.size();
    n = c;
  }
  return n;
}

// The node ending exactly at `path`, splitting an edge or adding a leaf.
PrefixCache::Node* PrefixCache::add_path(std::span<const int32_t> path) {
  Node* n = root_.get();
  size_t at = 0;
  while (at < path.size()) {
    auto it = n->children.find(path[at]);
    if (it == n->children.end()) {
      auto leaf = std::make_unique<Node>();
      leaf->edge.assign(path.begin() + at, path.end());
      leaf->parent = n;
      leaf->depth = static_cast<int>(path.size());
      Node* raw = leaf.get();
      n->children.emplace(path[at], std::move(leaf));
      return raw;
    }
    Node* c = it->second.get();
    size_t k = 0;
    while (k < c->edge.size() && at + k < path.size() && c->edge[k] == path[at + k]) ++k;
    if (k < c->edge.size()) {
      // Split c's edge at k: a new middle node takes the shared part.
      auto mid = std::make_unique<Node>();
      mid->edge.assign(c->edge.begin(), c->edge.begin() + static_cast<std::ptrdiff_t>(k));
      mid->parent = n;
      mid->depth = n->depth + static_cast<int>(k);
      std::unique_ptr<Node> owned = std::move(it->second);
      owned->edge.erase(owned->edge.begin(), owned->edge.begin() + static_cast<std::ptrdiff_t>(k));
      owned->parent = mid.get();
      const int32_t key = owned->edge.front();
      mid->children.emplace(key, std::move(owned));
      Node* raw = mid.get();
      it->second = std::move(mid);
      c = raw;
    }
    at += k;
    n = c;
  }
  return n;
}

bool PrefixCache::evict_one() {
  // The least recently used unreferenced snapshot with no snapshot below it.
  Node* victim = nullptr;
  Node* inner = nullptr;  // fallback: LRU unreferenced snapshot with snapshots below it
  std::vector<Node*> stack{root_.get()};
  std::vector<Node*> order;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    order.push_back(n);
    for (auto& [k, c] : n->children) stack.push_back(c.get());
  }
  // Children come after parents in `order`: walk it backwards to know, for
  // every node, whether a snapshot lives below it.
  std::map<Node*, bool> below;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = *it;
    bool any = false;
    for (auto& [k, c] : n->children) any = any || below[c.get()] || c->snap >= 0;
    below[n] = any;
    if (n->snap >= 0 && n->refs == 0 && !any && (!victim || n->last_use < victim->last_use)) victim = n;
    if (n->snap >= 0 && n->refs == 0 && any && (!inner || n->last_use < inner->last_use)) inner = n;
  }
  if (!victim && inner) {
    // Every leaf snapshot is in use (a running request descends from it):
    // drop an unreferenced snapshot above one. The snapshots below hold its
    // cells too, so its charge moves to each of the nearest ones (counted once
    // per holder: an over-count that stays safe for the budget).
    victim = inner;
    std::vector<Node*> todo;
    for (auto& [k, c] : victim->children) todo.push_back(c.get());
    int holders = 0;
    while (!todo.empty()) {
      Node* n = todo.back();
      todo.pop_back();
      if (n->snap >= 0) {
        n->charged += victim->charged;
        ++holders;
        continue;
      }
      for (auto& [k, c] : n->children) todo.push_back(c.get());
    }
    st_.cells += holders * victim->charged;
  }
  if (!victim) return false;
  (void)ctx_.release(victim->snap);  // already gone from the pool is fine
  victim->snap = -1;
  st_.cells -= victim->charged;
  victim->charged = 0;
  --st_.snapshots;
  ++st_.snapshots_evicted;
  prune(victim);
  return true;
}

// Removes n and its empty ancestors when nothing needs them any more.
void PrefixCache::prune(Node* n) {
  while (n && n != root_.get() && n->snap < 0 && n->refs == 0 && n->children.empty()) {
    Node* p = n->parent;
    p->children.erase(n->edge.front());
    n = p;
  }
}

bool PrefixCache::make_room(int add_cells) {
  auto fits = [&] {
    const size_t bytes = static_cast<size_t>(st_.snapshots + 1) * state_bytes_ +
                         static_cast<size_t>(st_.cells + add_cells) * cell_bytes_;
    return st_.snapshots + 1 <= opts_.max_snapshots && bytes <= opts_.max_bytes &&
           (cell_bytes_ == 0 || st_.cells + add_cells <= opts_.max_cells);
  };
  while (!fits())
    if (!evict_one()) return false;
  return true;
}

bool PrefixCache::insert(int seq, Ref& ref) {
  if (!enabled()) return false;
  if (ctx_.seq_pos_min(seq) != 0) return false;  // only histories that start at position 0
  const std::vector<int32_t> path = ctx_.seq_tokens(seq);
  if (path.empty()) return false;
  if (Node* n = find_exact(path); n && n->snap >= 0) {
    // Already cached (computed by another sequence, whose cells differ):
    // keep this sequence's lineage where it is.
    touch(n);
    ++st_.duplicates;
    return false;
  }
  const int base = ref.depth();
  const int charge = cell_bytes_ > 0 ? static_cast<int>(path.size()) - base : 0;
  // The lineage node must survive make_room: it is referenced by `ref`.
  if (!make_room(charge)) return false;
  auto id = ctx_.snapshot(seq);
  if (!id) return false;
  Node* n = add_path(path);
  n->snap = *id;
  n->charged = charge;
  touch(n);
  ++st_.snapshots;
  ++st_.snapshots_taken;
  st_.cells += charge;
  ++n->refs;
  unref(ref);
  ref.node_ = n;
  return true;
}

PrefixCache::Ref PrefixCache::share(const Ref& ref) {
  Ref r;
  r.node_ = ref.node_;
  if (r.node_) ++r.node_->refs;
  return r;
}

void PrefixCache::unref(Ref& ref) {
  Node* n = ref.node_;
  ref.node_ = nullptr;
  if (!n) return;
  --n->refs;
  prune(n);
}

void PrefixCache::clear() {
  while (evict_one()) {
  }
}

PrefixCache::Stats PrefixCache::stats() const {
  Stats s = st_;
  s.bytes = static_cast<size_t>(s.snapshots) * state_bytes_ + static_cast<size_t>(s.cells) * cell_bytes_;
  return s;
}

}  // namespace tandem
