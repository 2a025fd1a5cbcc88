#pragma once
// `tandem inspect MODEL --memory --ctx N --parallel P [--kv-type f16|f32] [--state-type f32|bf16] [--snapshot-slots S] [--json]`:
// what a context configuration would take, from the memory's own accounting
// (HybridMemory::estimate, the same sizes a real Context allocates): the
// attention K/V store (n_ctx cells, shared by all sequences: grows with the
// context), the recurrent state (one slot per sequence, constant in context
// length), the snapshot pool, bookkeeping, per sequence and in total.
#include <string>

namespace tandem::tools {

struct MemoryQuery {
  std::string path;
  int n_ctx = 0;            // 0: the model's training context (4096 if unknown), as Context does
  int n_parallel = 1;       // sequences (ContextOptions::n_seq_max)
  std::string kv_type = "f16";
  std::string state_type = "f32";  // recurrent state storage: f32 or bf16
  int snapshot_slots = 0;
  bool json = false;
};

// Prints the table (or one JSON document); returns the exit code (1 with one
// error line on stderr for a bad file or configuration).
int print_memory(const MemoryQuery& q);

}  // namespace tandem::tools
