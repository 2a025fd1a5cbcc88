#pragma once
// The hybrid memory (DESIGN §2): one object holding, per sequence, the attention
// KV cells of the attention layers and the recurrent (conv + SSM) state of the
// recurrent layers. Built from per-layer specs only (views.h LayerKind); it
// knows no architecture names.
//
// ============================ DRIVING PROTOCOL ============================
// A decode call of the runtime (all-or-nothing):
//
//   TANDEM_ASSIGN_OR_RETURN(Plan plan, mem.plan(batch));   // validates, mutates nothing
//   for (int i = 0; i < plan.n_ubatch(); ++i) {
//     Result<Applied> a = mem.apply(plan, i);               // places micro-batch i
//     if (!a) { mem.rollback(plan); return a.status(); }     // (apply already undid itself)
//     Status st = runner.forward(*a->ubatch, *a->memory, logits, embd, pool);
//     if (!st || cancelled) { mem.rollback(plan); return st; }
//   }
//   mem.commit(plan);
//
// (After each successful forward the runtime also calls mem.end_ubatch(),
// which stores a bf16 state back; f32 state needs nothing.)
//
// * plan() splits the batch into micro-batches (equal split when the model has
//   recurrent layers, simple split otherwise), checks every rule below and that
//   there is room, and returns. It never changes memory.
// * apply(plan, i) must be called for i = 0, 1, ... in order. It places the
//   micro-batch's tokens in attention cells (dst_cells), computes the masks,
//   assigns / zeroes / copies-on-write the recurrent slots of its streams, and
//   returns the UBatch plus a LayerMemory (typed KvView / StateView per layer)
//   valid until the next apply/commit/rollback. The model writes K/V of ALL
//   rows of an attention layer into dst_cells before attending (a row sees the
//   rows of its own sequences placed in the same micro-batch with pos <= its pos),
//   and updates the recurrent states in place.
// * The first apply opens a transaction; until commit() or rollback() every
//   other mutating call is refused (kInvalidArgument "decode in progress").
// * rollback(plan) returns every touched sequence (cells, K/V rows rewritten in
//   place, slots, states, positions, refcounts, snapshot validity) to its state
//   before the first apply. commit(plan) forgets the undo information.
// * A plan is tied to the memory state it was made on: any mutation after
//   plan() makes apply() refuse it as stale.
//
// Outputs: a row r of the caller's batch with output[r] = 1 gets
// out_index = number of output rows before r in the caller's batch order.
// The runner writes its logits at logits + out_index * n_vocab, so the logits
// buffer ([plan.n_outputs][n_vocab]) is in the caller's batch order whatever
// the micro-batch order. Rows with output[r] = 0 get out_index = -1.
//
// Batch rules (each violation is a plan() error naming sequence and position):
// * every row has >= 1 sequence id, each in [0, n_seq_max), no duplicates;
// * a sequence's rows, in batch order, have consecutive positions q, q+1, ...;
// * q continues the sequence: q = pos_max + 1 of the recurrent store when the
//   model has recurrent layers (replay after a suffix seq_rm starts at the
//   reported replay_from; attention cells that already exist at replayed
//   positions are rewritten in place, never duplicated); attention-only: q =
//   attention pos_max + 1; an empty sequence may start at any q >= 0 (for a
//   hybrid with attention cells but an empty recurrent state: q = attention pos_min);
// * recurrent: a row shared by several sequences {a,b} is one stream; a and b
//   must hold the same state at that point (fresh, or shared after seq_cp, or
//   made shared earlier in the batch) — else "incompatible sequence sets";
//   afterwards they share the state copy-on-write;
// * attention: a row of several sequences sees the cells that belong to ALL of
//   them (their common history);
// * there must be enough free attention cells for the new positions ("no room").
//
// Positions are integers; seq_div uses integer division (p / d), like the
// reference engine; UBatch::pos carries them as float.
// ==========================================================================
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "memory/views.h"

namespace tandem::memory {

// What a caller decodes (the runtime builds it).
struct Batch {
  std::vector<int32_t> tokens;              // [n]
  std::vector<int32_t> pos;                 // [n]
  std::vector<std::vector<int32_t>> seq;    // [n] sequence ids of each row (at least one)
  std::vector<uint8_t> output;              // [n] 1 = caller wants logits/embeddings for this row
                                            //     (empty vector: only the last row)
  int size() const { return static_cast<int>(tokens.size()); }
};

struct MemoryOptions {
  int n_ctx = 0;              // attention cells in all (shared by all sequences)
  int n_seq_max = 1;          // sequence ids are 0 .. n_seq_max-1 (<= kMaxSeq)
  int n_ubatch = 512;         // max tokens per micro-batch
  DType kv_type = DType::F16; // F16 or F32 K/V storage
  DType state_type = DType::F32; // F32 or BF16 recurrent state storage (slots and snapshots)
  int snapshot_slots = 0;     // bounded snapshot pool (LRU eviction); 0 = no snapshots
};

inline constexpr int kMaxSeq = 256;
inline constexpr int32_t kMaxPos = 1 << 30;  // positions are in [0, kMaxPos]

// One planned micro-batch (internal details are public for tests and tools,
// but callers only need `ub`).
struct PlannedUBatch {
  UBatch ub;
  std::vector<int32_t> src_row;                  // [n_tokens] row in the caller's batch
  std::vector<std::vector<int32_t>> row_seqs;    // [n_tokens] sorted sequence set of each row
  std::vector<std::vector<int32_t>> stream_seqs; // [ub.n_seqs] sorted sequence set of each stream
};

class Plan {
 public:
  int n_ubatch() const { return static_cast<int>(ubatches.size()); }
  const UBatch& ubatch(int i) const { return ubatches[i].ub; }

  std::vector<PlannedUBatch> ubatches;
  int n_tokens = 0;
  int n_outputs = 0;         // rows with output = 1 (size of the caller's logits buffer / n_vocab)
  uint64_t generation = 0;   // memory generation the plan was made on
  uint64_t plan_id = 0;      // unique per plan
};

// What apply() hands to the forward pass; valid until the next apply/commit/rollback.
struct Applied {
  const UBatch* ubatch = nullptr;
  LayerMemory* memory = nullptr;
};

// What a sequence's memory can do right now.
struct SeqCapabilities {
  bool has_attention = false;      // model has attention layers
  bool has_recurrent = false;      // model has recurrent layers
  bool truncate_any_range = false; // seq_rm of any [p0,p1) (attention-only models)
  bool truncate_suffix = false;    // seq_rm [p0, inf): always (recurrent: via snapshot or replay)
  bool shift = false;              // seq_add / seq_div
  bool copy = true;                // seq_cp (recurrent: whole sequence only)
  int snapshot_slots = 0;          // pool size
  int snapshot_free = 0;           // free pool entries (without eviction)
  std::vector<int32_t> restore_points;  // positions of snapshots valid for this sequence (ascending)
  int32_t attn_pos_min = -1, attn_pos_max = -1;  // -1: none / no attention layers
  int32_t rec_pos_min = -1, rec_pos_max = -1;    // -1: empty / no recurrent layers
};

// Result of seq_rm: when the recurrent state had to go back to a snapshot (or to
// the empty state), the caller must re-decode its kept tokens at positions
// [replay_from, replay_end) to bring the state back to p0 - 1. Empty range
// (replay_from == replay_end) = nothing to replay.
struct RmOutcome {
  int32_t replay_from = 0;
  int32_t replay_end = 0;
  bool needs_replay() const { return replay_end > replay_from; }
};

struct MemoryBytes {
  size_t attention = 0;   // K/V buffers
  size_t recurrent = 0;   // state slots
  size_t snapshots = 0;   // snapshot pool (recurrent copies)
  size_t metadata = 0;    // cell / slot bookkeeping (approximate)
  size_t total() const { return attention + recurrent + snapshots + metadata; }
};

struct SeqBytes {
  size_t attention = 0;   // K/V of the cells the sequence uses (shared cells counted fully)
  size_t recurrent = 0;   // its state slot (shared slot counted fully)
  int n_cells = 0;
};

class HybridMemory {
 public:
  // Errors: no layer needs memory is fine (empty memory); kInvalidArgument for
  // bad options (n_ctx < 1 with attention layers, n_seq_max out of [1, kMaxSeq],
  // kv_type not F16/F32, bad spec sizes).
  static Result<std::unique_ptr<HybridMemory>> create(std::vector<LayerSpec> layers,
                                                      const MemoryOptions& opts);
  // What a configuration would take (for `tandem inspect --memory`); same
  // validation as create, no allocation.
  static Result<MemoryBytes> estimate(const std::vector<LayerSpec>& layers, const MemoryOptions& opts);

  ~HybridMemory();
  HybridMemory(const HybridMemory&) = delete;
  HybridMemory& operator=(const HybridMemory&) = delete;

  const std::vector<LayerSpec>& layers() const;
  const MemoryOptions& options() const;
  bool has_attention() const;
  bool has_recurrent() const;

  // ---------------------------------------------------------------- decode
  Result<Plan> plan(const Batch& batch) const;
  Result<Applied> apply(const Plan& plan, int i);
  // After the forward pass of the micro-batch just applied: with bf16 state,
  // narrows the f32 staging the StateViews pointed at back into the slots
  // (round to nearest even). No-op with f32 state (the views point at the
  // slots themselves) or when nothing is pending. apply() and commit() call it
  // themselves for a pending micro-batch; rollback() discards the staging.
  void end_ubatch();
  void commit(const Plan& plan);
  void rollback(const Plan& plan);
  bool in_transaction() const;

  // ---------------------------------------------------------------- sequences
  // p0 < 0 means 0, p1 < 0 means infinity. Whole sequence: p0 <= 0 && p1 < 0.
  Result<RmOutcome> seq_rm(int s, int32_t p0, int32_t p1);
  // Whole range: dst becomes a copy of src (dst's previous content dropped).
  // A partial range is attention-only (adds dst to src's cells in range).
  Status seq_cp(int src, int dst, int32_t p0 = -1, int32_t p1 = -1);
  Status seq_keep(int s);
  // Shift positions in [p0, p1) by delta; attention cells that would go below 0
  // are dropped; RoPE layers' K re-rotated. Recurrent: relabel only.
  Status seq_add(int s, int32_t p0, int32_t p1, int32_t delta);
  Status seq_div(int s, int32_t p0, int32_t p1, int d);
  // Per store, never mixed. -1 when empty (or when the model has no such store).
  int32_t seq_pos_min_attn(int s) const;
  int32_t seq_pos_max_attn(int s) const;
  int32_t seq_pos_min_rec(int s) const;
  int32_t seq_pos_max_rec(int s) const;
  // The position the next token of s must have (-1: any, the sequence is empty).
  int32_t seq_next_pos(int s) const;
  bool seq_empty(int s) const;
  SeqCapabilities capabilities(int s) const;
  void clear();

  // ---------------------------------------------------------------- snapshots
  // Records s at its current position (recurrent pos_max, else attention pos_max):
  // a copy of its recurrent state and references to its attention cells.
  Result<uint64_t> snapshot(int s);
  // s becomes exactly the snapshot (its previous content dropped).
  Status restore(int s, uint64_t id);
  Status release(uint64_t id);
  int32_t snapshot_pos(uint64_t id) const;  // -1 if unknown

  // ---------------------------------------------------------------- state files
  // `fingerprint` identifies the model (caller-supplied bytes); load refuses a
  // file with another fingerprint or geometry. Loads parse and verify fully
  // before touching memory; on any error memory is unchanged.
  Result<std::vector<uint8_t>> serialize(std::string_view fingerprint) const;
  Status deserialize(std::span<const uint8_t> bytes, std::string_view fingerprint);
  Result<std::vector<uint8_t>> serialize_seq(int s, std::string_view fingerprint) const;
  // Loads one sequence into `dst`, which must be empty (any id: the file is not
  // tied to the id it was saved from). Its snapshots enter the pool like new
  // snapshots (LRU eviction of others; if the file holds more than the pool,
  // the newest ones are kept).
  Status deserialize_seq(std::span<const uint8_t> bytes, int dst, std::string_view fingerprint);
  Status save_file(const std::string& path, std::string_view fingerprint) const;  // temp + rename
  Status load_file(const std::string& path, std::string_view fingerprint);
  Status save_seq_file(const std::string& path, int s, std::string_view fingerprint) const;
  Status load_seq_file(const std::string& path, int dst, std::string_view fingerprint);

  // ---------------------------------------------------------------- accounting
  MemoryBytes bytes() const;
  SeqBytes seq_bytes(int s) const;
  int n_cells_used() const;
  int n_slots_used() const;

  struct Impl;
  Impl& impl() { return *impl_; }
  const Impl& impl() const { return *impl_; }

 private:
  explicit HybridMemory(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::memory
