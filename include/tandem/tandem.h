#pragma once
// Tandem public API: load a GGUF model, create contexts, decode batches of
// tokens for many sequences at once, read logits, and operate on the
// per-sequence memory (attention KV cache + recurrent state) as one.
//
// Nothing here includes an internal header: implementation types hide behind
// pointers (pimpl). Errors are values (Outcome / Expected<T>), never exceptions.
//
// Typical use:
//   auto m = tandem::Model::load("model.gguf");            // Expected<unique_ptr<Model>>
//   if (!m) { fprintf(stderr, "%s\n", m.error().c_str()); return 1; }
//   auto ctx = tandem::Context::create(**m, {.n_ctx = 512});
//   tandem::Batch b;
//   auto toks = (*m)->tokenize("Once upon a time");
//   for (size_t i = 0; i < toks.size(); ++i) b.add(toks[i], int(i), {0}, i + 1 == toks.size());
//   if (auto st = (*ctx)->decode(b); !st) ...;
//   const float* logits = (*ctx)->logits(0);                // [n_vocab], first output row
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "tandem/sampler.h"

namespace tandem {

// ------------------------------------------------------------------ errors
enum class Errc {
  kOk = 0,
  kInvalidArgument,  // out-of-range sequence id, bad position, bad option
  kNotFound,         // missing file / key / tensor
  kCorrupt,          // a file contradicts its format
  kUnsupported,      // a valid request this model / memory cannot honour
  kOutOfMemory,      // no room for the batch (KV cells, state slots, snapshots)
  kIo,
  kCancelled,        // the cancel callback asked to stop
  kInternal,
};

// Success, or a code and a message that names the file / sequence / position.
class [[nodiscard]] Outcome {
 public:
  Outcome() = default;
  Outcome(Errc code, std::string message) : code_(code), message_(std::move(message)) {}
  bool ok() const { return code_ == Errc::kOk; }
  explicit operator bool() const { return ok(); }
  Errc code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Errc code_ = Errc::kOk;
  std::string message_;
};

// A value or the Outcome that explains why there is none.
template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Expected(Outcome failure) : v_(std::move(failure)) {}  // NOLINT: must not be ok
  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  // The failure (an ok Outcome when there is a value).
  Outcome outcome() const { return ok() ? Outcome() : std::get<Outcome>(v_); }
  const std::string& error() const {
    static const std::string kNone;
    return ok() ? kNone : std::get<Outcome>(v_).message();
  }

 private:
  std::variant<T, Outcome> v_;
};

// ------------------------------------------------------------------ model
enum class ModelKind { kAttentionOnly, kRecurrent, kHybrid };
// What memory a layer keeps per sequence.
enum class LayerKind { kNone, kAttention, kRecurrent, kBoth };
const char* model_kind_name(ModelKind k);  // "attention-only", "recurrent", "hybrid"
const char* layer_kind_name(LayerKind k);  // "none", "attention", "recurrent", "both"

// One message of a conversation: role "system", "user", "assistant" or "tool".
struct ChatTurn {
  std::string role;
  std::string content;
};

// How a model file's bytes are held.
//  kMmap (`--mmap`): a read-only mapping of the file, no copy, sharing the page
//    cache with other processes.
//  kRead (`--no-mmap`): the file read into memory advised for transparent huge
//    pages: a copy of the file and a slower load, but faster decoding of large
//    models (weights stream through 2 MiB pages: 1b Q8_0 decoded 1.2-1.6x
//    faster than from the mapping in session 7, docs/benchmarks.md).
//  kAuto (default): kRead when the file takes at most half of the memory
//    available at load time, else kMmap.
enum class WeightLoad { kAuto, kMmap, kRead };

struct ModelOptions {
  WeightLoad weights = WeightLoad::kAuto;
};

class Model {
 public:
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Opens and validates the GGUF file, binds the weights (mmap, no copy) and
  // builds the tokenizer from the file's `tokenizer.ggml.*` metadata.
  static Expected<std::unique_ptr<Model>> load(const std::string& path, const ModelOptions& opts = {});

  // ---- structure
  const std::string& path() const;
  std::string arch() const;        // general.architecture
  std::string name() const;        // general.name, else the file name
  ModelKind kind() const;
  std::vector<LayerKind> layer_kinds() const;
  int n_layer() const;
  int n_vocab() const;
  int n_embd() const;
  int n_ctx_train() const;
  // True when any weight tensor is stored in a quantized block format
  // (Q8_0, Q4_K, ...); F32 / F16 / BF16 models are not quantized.
  bool is_quantized() const;
  // Distinct tensor types of the file, e.g. {"f32", "q4_K", "q6_K"}.
  std::vector<std::string> tensor_types() const;
  uint64_t n_params() const;
  uint64_t size_bytes() const;     // bytes of tensor data
  bool weights_in_memory() const;  // the file was read into memory (WeightLoad), not mapped
  // A metadata value rendered as text ("" when absent).
  std::string meta(std::string_view key) const;

  // ---- tokenizer
  // add_special: BOS/EOS as the model's metadata says. parse_special: control
  // tokens written in the text ("<|im_start|>") become their ids.
  std::vector<int32_t> tokenize(std::string_view text, bool add_special = true,
                                bool parse_special = false) const;
  // The text of a token sequence; the SentencePiece leading space is removed,
  // control tokens appear only when `special`.
  std::string detokenize(std::span<const int32_t> tokens, bool special = false) const;
  // The bytes of one token exactly (a leading space included).
  std::string token_to_piece(int32_t token, bool special = false) const;
  int32_t bos() const;  // -1 when the vocabulary has none
  int32_t eos() const;
  bool add_bos() const;
  bool is_eog(int32_t token) const;  // end of generation (EOS, EOT, ...)
  std::string chat_template() const; // "" when the file has none
  // Renders a conversation with the model's chat template; a model without a
  // usable template gets the plain "role: content" lines format (and, with
  // add_generation_prompt, a final "assistant: " opener).
  std::string format_chat(const std::vector<ChatTurn>& turns, bool add_generation_prompt) const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Turns generated tokens into text as they come, holding back bytes of a UTF-8
// character split across tokens. strip_leading_space drops the first space of
// the whole stream (SentencePiece decoding / llama2.c convention); without it
// every token's bytes are printed exactly (the reference engine's convention).
class TextStream {
 public:
  explicit TextStream(const Model& model, bool strip_leading_space = false, bool special = false);
  std::string push(int32_t token);  // newly completed text (may be "")
  std::string flush();              // whatever is still held back
 private:
  const Model* model_;
  bool strip_, special_, at_start_ = true;
  std::string pending_;
};

// ------------------------------------------------------------------ batch
// Tokens to decode in one call. Token i has position pos[i], belongs to the
// sequences seq[i] (one or more ids in [0, n_seq_max)) and, when output[i],
// gets a logits row. Positions of one sequence must continue its memory
// without gaps (pos_max + 1, pos_max + 2, ...) and increase within the batch.
struct Batch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> pos;
  std::vector<std::vector<int32_t>> seq;
  std::vector<uint8_t> output;

  void add(int32_t token, int32_t position, std::initializer_list<int32_t> seqs, bool want_logits) {
    tokens.push_back(token);
    pos.push_back(position);
    seq.emplace_back(seqs);
    output.push_back(want_logits ? 1 : 0);
  }
  void add(int32_t token, int32_t position, std::vector<int32_t> seqs, bool want_logits) {
    tokens.push_back(token);
    pos.push_back(position);
    seq.push_back(std::move(seqs));
    output.push_back(want_logits ? 1 : 0);
  }
  void clear() {
    tokens.clear();
    pos.clear();
    seq.clear();
    output.clear();
  }
  size_t size() const { return tokens.size(); }
};

// ------------------------------------------------------------------ context
enum class KvType { kF16, kF32 };
// Storage of the recurrent (conv + SSM) states and their snapshots. kBF16 halves
// their bytes; the forward pass still computes in f32 (each micro-batch's states
// are widened, updated, then rounded back to bf16).
enum class StateType { kF32, kBF16 };

struct ContextOptions {
  int n_ctx = 0;          // attention cells (tokens over all sequences); 0: the model's training length
  int n_seq_max = 1;      // sequence ids are 0 .. n_seq_max-1
  int n_ubatch = 512;     // tokens per micro-batch (compute buffer size)
  int n_threads = 0;      // 0: hardware concurrency
  KvType kv_type = KvType::kF16;
  StateType state_type = StateType::kF32;
  int snapshot_slots = 0; // recurrent-state snapshots kept for truncation (0: replay from the start)
  // Take a recurrent-state snapshot of each sequence at the end of every
  // decode call (needs snapshot_slots > 0): a later cut replays only the
  // tokens after the newest snapshot before it.
  bool auto_snapshot = false;
};

// Progress of a decode call: micro-batches done / total, tokens done / total.
struct DecodeProgress {
  int ubatches_done, ubatches_total;
  int tokens_done, tokens_total;
};

class Context {
 public:
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // `model` must outlive the context.
  static Expected<std::unique_ptr<Context>> create(const Model& model, const ContextOptions& opts = {});

  const Model& model() const;
  const ContextOptions& options() const;  // with defaults resolved
  int n_vocab() const;

  // Decodes a batch, all or nothing: the batch is planned into micro-batches
  // (nothing changes if it does not fit), each micro-batch is applied and run
  // through the model, and only when all succeed is the memory committed.
  // On any failure (placement, compute, cancellation) every sequence is back
  // to its state before the call and the logits of the previous call are gone.
  Outcome decode(const Batch& batch);

  // Logits of the i-th output row of the last decode, in batch order
  // (i-th token with output set). n_vocab floats; nullptr if out of range.
  const float* logits(int i) const;
  int n_outputs() const;
  // The batch row of output i (its index in the last decode's batch).
  int output_row(int i) const;

  // Called between micro-batches; returning true cancels the decode (rolled back).
  void set_cancel_callback(std::function<bool()> cb);
  // Called after each micro-batch of a decode.
  void set_progress_callback(std::function<void(const DecodeProgress&)> cb);

  // ---- memory operations (p0 / p1 < 0 mean open ends; ranges are [p0, p1))
  // Removes positions [p0, p1) of `seq` (seq < 0: every sequence). On models
  // with recurrent layers only whole sequences or suffixes can be removed:
  // the recurrent state is restored from the newest snapshot before p0 (or
  // the empty state) and the kept tokens after it are replayed through the
  // model. Anything else is refused and nothing changes.
  Outcome seq_rm(int seq, int p0, int p1);
  // Makes `dst` share the [p0, p1) part of `src` (cells and state are shared,
  // copied on write); dst's token history becomes src's.
  Outcome seq_cp(int src, int dst, int p0 = -1, int p1 = -1);
  Outcome seq_keep(int seq);                      // drop every other sequence
  Outcome seq_add(int seq, int p0, int p1, int delta);  // shift positions
  Outcome seq_div(int seq, int p0, int p1, int d);      // divide positions (integer)
  // Cost of truncation: tokens re-decoded by the most recent seq_rm call (0 when
  // it needed none: attention-only models, whole-sequence removals, a cut right
  // after a snapshot). For a suffix cut at p0 of a model with recurrent layers it
  // is p0 - (S + 1), S the position of the newest snapshot at or before p0 - 1
  // (S = -1 without one). replayed_tokens_total() sums them since create().
  int last_replayed_tokens() const;
  int64_t replayed_tokens_total() const;
  // seq_rm(seq, p0, -1) with the replay left to the caller (speculative
  // decoding folds it into its next decode): returns the position the next
  // decode of seq must start at. When it is below p0, the kept tokens at
  // [returned, p0) must be decoded again first (seq_tokens() no longer lists
  // them; their attention cells are rewritten in place). Until then use no
  // other memory operation on seq than decode or a whole-sequence seq_rm.
  Expected<int> seq_rm_deferred(int seq, int p0);
  int seq_pos_min(int seq) const;  // -1 when the sequence is empty
  int seq_pos_max(int seq) const;
  // Tokens currently held for `seq`, in position order (the replay history).
  std::vector<int32_t> seq_tokens(int seq) const;
  void clear();                    // every sequence empty, snapshots released

  // Snapshots of one sequence's memory (recurrent state copy + attention cells).
  // Ids stay valid until released or evicted (the pool is bounded by
  // ContextOptions::snapshot_slots, least recently used first).
  Expected<int64_t> snapshot(int seq);
  Outcome restore(int seq, int64_t snapshot_id);  // seq becomes exactly the snapshot
  Outcome release(int64_t snapshot_id);

  // Whole-context state files (memory, snapshots and token histories),
  // versioned and checksummed; load fails cleanly on a file for another model.
  Outcome save(const std::string& path) const;
  Outcome load(const std::string& path);
  // One sequence only.
  Outcome save_seq(const std::string& path, int seq) const;
  Outcome load_seq(const std::string& path, int seq);

  // Bytes of memory held by the KV cache + recurrent states (+ snapshots).
  size_t memory_bytes() const;

  // Memory in use, read from the memory itself (src/runtime/context_usage.cpp).
  int n_cells_used() const;   // attention cells used by a sequence or pinned by a snapshot
  int n_slots_used() const;   // recurrent state slots referenced by sequences (shared slots once)
  int n_snapshots() const;    // snapshots held in the pool
  size_t cell_bytes() const;  // K/V bytes of one attention cell over all attention layers (0: none)
  size_t state_bytes() const; // bytes of one recurrent state (conv + SSM, all layers; 0: none)

  struct Impl;

 private:
  explicit Context(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem
