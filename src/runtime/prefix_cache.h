#pragma once
// Prefix cache over a tandem::Context: a radix tree over token ids whose
// nodes, at snapshot points, hold a snapshot of the Context (recurrent state
// copy + pinned attention cells, see Context::snapshot). A new request takes
// the longest cached prefix of its prompt that ends at a snapshot, restores it
// into its (empty) sequence — sharing the attention cells, copying the
// recurrent state — and processes only the rest. Attention-only models use
// the same tree (snapshots then only pin cells).
//
// Budget: snapshots count, bytes (state copies + attention cells the cache
// pins) and attention cells; least recently used snapshots at the LEAVES of
// the tree are evicted first, so a snapshot whose cells a deeper snapshot
// shares (its lineage) stays as long as that one. Nodes referenced by a live
// request (Ref) are never evicted. Eviction only drops snapshots: sequences of
// running requests own their cells and state, so it never breaks them.
//
// Cell accounting: a snapshot taken of a sequence restored from node B (or
// last inserted at B) pins B's cells plus the sequence's own cells after B,
// so it is charged `length - depth(B)` cells; B is its tree ancestor and is
// kept while it lives, so the charges add up to at least the pinned cells.
//
// Not thread-safe: the server's decode loop is its only user.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "tandem/tandem.h"

namespace tandem {

class PrefixCache {
 public:
  struct Options {
    size_t max_bytes = 0;    // 0: the cache is disabled
    int max_snapshots = 64;  // <= the Context's snapshot_slots
    int max_cells = 0;       // attention cells the cache may pin (0 with attention layers: none)
  };
  struct Stats {
    uint64_t lookups = 0, hits = 0;
    uint64_t reused_tokens = 0;      // prompt tokens restored instead of processed
    uint64_t recomputed_tokens = 0;  // tokens found in the tree past the last usable snapshot
    uint64_t snapshots_taken = 0, snapshots_evicted = 0, duplicates = 0;
    int snapshots = 0;               // held now
    int cells = 0;                   // attention cells charged now
    size_t bytes = 0;                // state copies + charged cells
  };

  struct Node;
  // A request's hold on a node: the node is not evicted while referenced.
  // It also records the request's lineage (what its sequence shares).
  class Ref {
   public:
    Ref() = default;
    int depth() const;
    bool empty() const { return node_ == nullptr; }

   private:
    friend class PrefixCache;
    Node* node_ = nullptr;
  };

  PrefixCache(Context& ctx, Options opts);
  ~PrefixCache();
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  bool enabled() const { return opts_.max_bytes > 0 && opts_.max_snapshots > 0; }

  // Restores into the empty sequence `seq` the longest cached prefix of
  // `tokens` that ends at a snapshot and is at most max_len tokens long.
  // Returns its length (0: nothing restored, `seq` untouched); `ref` then
  // holds the node (release it with unref).
  int restore_longest(std::span<const int32_t> tokens, int max_len, int seq, Ref& ref);

  // Snapshots `seq` (its whole token history, positions 0..n-1) into the
  // tree, evicting to make room; `ref` is the sequence's lineage and moves to
  // the new node. Does nothing when the prefix is already cached or the
  // budget cannot make room. Returns true when a snapshot was added.
  bool insert(int seq, Ref& ref);

  // A copy of the hold (a forked sequence shares the lineage).
  Ref share(const Ref& ref);
  void unref(Ref& ref);

  // Drops every unreferenced snapshot.
  void clear();
  Stats stats() const;

 private:
  Node* find_exact(std::span<const int32_t> path) const;
  Node* add_path(std::span<const int32_t> path);
  bool make_room(int add_cells);
  bool evict_one();
  void prune(Node* n);
  void touch(Node* n);

  Context& ctx_;
  Options opts_;
  size_t cell_bytes_ = 0, state_bytes_ = 0;
  std::unique_ptr<Node> root_;
  uint64_t clock_ = 0;
  Stats st_;
};

}  // namespace tandem
