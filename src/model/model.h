#pragma once
// A loaded model: configuration read from GGUF metadata, weights bound by
// tensor name as views into the file's mmap (never copied), the per-layer
// memory specs the hybrid memory is built from, and a Runner that runs the
// forward pass of one micro-batch over preallocated activation buffers.
//
// Supported GGUF architectures: llama, mamba, mamba2, granitehybrid (dense and
// MoE), jamba, falcon-h1, nemotron_h. One file per architecture lives in
// src/model/arch/; shared layer builders in src/model/layers/.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "memory/views.h"

namespace tandem::kernels { class ThreadPool; }

namespace tandem::model {

struct LoadOptions {
  // Refuse tensor types the kernels cannot dequantize (always on today; kept
  // as an option so tools like `inspect` can load metadata-only views later).
  bool check_tensor_types = true;
  // How the file's bytes are held (gguf::File::Load): by default read into
  // memory advised for huge pages when the file takes at most half of the
  // available memory, else mapped. `--mmap` / `--no-mmap` force one.
  gguf::File::Load load = gguf::File::Load::kAuto;
};

// What one layer's token mixer is.
enum class MixerKind : uint8_t {
  kNone,        // Nemotron-H MLP-only layer: no mixer
  kAttention,
  kMamba1,
  kMamba2,
  kAttnMamba2,  // Falcon-H1: attention and Mamba2 in parallel on the same input
};
// What one layer's channel mixer is.
enum class FfnKind : uint8_t { kNone, kSwiGLU, kReluSqr, kMoE };

const char* mixer_kind_name(MixerKind k);
const char* ffn_kind_name(FfnKind k);

enum class ModelKind : uint8_t { kAttentionOnly, kRecurrent, kHybrid };
const char* model_kind_name(ModelKind k);

struct ModelConfig {
  std::string arch;           // general.architecture, e.g. "granitehybrid"
  int n_vocab = 0;
  int n_embd = 0;
  int n_layer = 0;
  int n_ctx_train = 0;
  float norm_eps = 1e-5f;     // <arch>.attention.layer_norm_rms_epsilon

  // Attention (per layer; 0 where a layer has no attention).
  std::vector<int> n_head;     // query heads
  std::vector<int> n_head_kv;  // KV heads
  int head_dim_k = 0;          // key_length or n_embd / n_head
  int head_dim_v = 0;          // value_length or n_embd / n_head
  bool use_rope = false;       // false: NoPE
  bool rope_finetuned = false; // rope.scaling.finetuned (granitehybrid: RoPE only when true)
  kernels::RopeParams rope;    // meaningful when use_rope
  float attn_scale = 0.0f;     // scale on q·k (attention.scale, else 1/sqrt(head_dim_k))

  // Feed-forward (per layer; 0 where a layer has none).
  std::vector<int> n_ff;

  // Granite scales (1 when absent).
  float embedding_scale = 1.0f;
  float residual_scale = 1.0f;
  float logit_scale = 1.0f;    // logits are divided by it

  // State space (0 when the model has none).
  int ssm_d_conv = 0;     // ssm.conv_kernel
  int ssm_d_inner = 0;    // ssm.inner_size
  int ssm_d_state = 0;    // ssm.state_size
  int ssm_dt_rank = 0;    // ssm.time_step_rank (Mamba2: number of SSM heads)
  int ssm_n_group = 1;    // ssm.group_count (Mamba2)
  bool ssm_dt_b_c_rms = false;  // Jamba: RMS norms on dt / B / C

  // Mixture of experts (0 when absent).
  int n_expert = 0;
  int n_expert_used = 0;
  int n_ff_shexp = 0;     // expert_shared_feed_forward_length

  // Per-layer structure derived from the keys and tensors above.
  std::vector<MixerKind> mixer;  // [n_layer]
  std::vector<FfnKind> ffn;      // [n_layer]

  ModelKind kind() const;
  int ssm_n_head() const;        // Mamba2: dt_rank; Mamba1: d_inner
  int ssm_head_dim() const;      // Mamba2: d_inner / n_head; Mamba1: 1
  int ssm_conv_channels() const; // Mamba2: d_inner + 2*G*N; Mamba1: d_inner
};

struct Weights;  // defined in model/weights.h (internal)

class Model {
 public:
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  static Result<std::unique_ptr<Model>> load(const std::string& path, const LoadOptions& opts = {});
  // Same from an already opened file (tests build models in memory).
  static Result<std::unique_ptr<Model>> from_file(std::unique_ptr<gguf::File> file,
                                                  const LoadOptions& opts = {});

  const ModelConfig& config() const { return cfg_; }
  const std::vector<memory::LayerSpec>& layer_specs() const { return specs_; }
  const gguf::File& file() const { return *file_; }
  // Hash of the architecture, hyper-parameters and every tensor's name, type
  // and shape: state files saved for one model refuse to load into another.
  uint64_t fingerprint() const { return fingerprint_; }

  const Weights& weights() const { return *w_; }  // internal use (Runner, arch code)

 private:
  Model();
  std::unique_ptr<gguf::File> file_;
  ModelConfig cfg_;
  std::vector<memory::LayerSpec> specs_;
  std::unique_ptr<Weights> w_;
  uint64_t fingerprint_ = 0;
};

struct Scratch;  // activation buffers (model/scratch.h, internal)

// Per-context activation scratch + the forward pass over one micro-batch.
// Not thread-safe: one Runner per context; it uses `pool` for parallelism.
class Runner {
 public:
  Runner(const Model& model, int max_ubatch_tokens);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  int max_ubatch_tokens() const { return max_tokens_; }

  // Runs micro-batch `ub` through every layer, reading/writing the layer
  // memory handed out by `mem` (KV for attention layers, states for
  // recurrent ones). For each row i with ub.out_index[i] >= 0 writes
  // n_vocab logits to logits + out_index*n_vocab (if logits != null) and the
  // final normed hidden state (n_embd floats) to embeddings + out_index*n_embd
  // (if embeddings != null). No LM head for the other rows.
  // Errors: ub larger than max_ubatch_tokens, token id out of range,
  // malformed ubatch (n_seqs*n_seq_tokens != n_tokens, vector sizes).
  Status forward(const memory::UBatch& ub, memory::LayerMemory& mem, float* logits,
                 float* embeddings, kernels::ThreadPool& pool);

 private:
  const Model& model_;
  int max_tokens_;
  std::unique_ptr<Scratch> s_;
};

}  // namespace tandem::model
