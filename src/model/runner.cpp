// The forward pass of one micro-batch: embeddings, the architecture's layers,
// final norm and LM head for the output rows only.
#include <cstring>

#include "core/profiler.h"
#include "model/arch/arch.h"
#include "model/layers/fwd.h"
#include "model/layers/layers.h"

namespace tandem::model {

Runner::Runner(const Model& model, int max_ubatch_tokens)
    : model_(model), max_tokens_(max_ubatch_tokens > 0 ? max_ubatch_tokens : 1), s_(std::make_unique<Scratch>()) {
  s_->allocate(model.config(), max_tokens_);
}

Runner::~Runner() = default;

Status Runner::forward(const memory::UBatch& ub, memory::LayerMemory& mem, float* logits, float* embeddings,
                       kernels::ThreadPool& pool) {
  const ModelConfig& c = model_.config();
  const Weights& w = model_.weights();
  const int T = ub.n_tokens;
  if (T <= 0 || T > max_tokens_) {
    return TANDEM_ERR(kInvalidArgument, "micro-batch of {} tokens (this runner takes 1..{})", T, max_tokens_);
  }
  if (static_cast<int>(ub.tokens.size()) != T || static_cast<int>(ub.pos.size()) != T ||
      static_cast<int>(ub.out_index.size()) != T) {
    return TANDEM_ERR(kInvalidArgument, "micro-batch vectors (tokens {}, pos {}, out_index {}) must all have {} entries",
                      ub.tokens.size(), ub.pos.size(), ub.out_index.size(), T);
  }
  if (ub.n_seqs <= 0 || ub.n_seq_tokens <= 0 || ub.n_seqs * ub.n_seq_tokens != T) {
    return TANDEM_ERR(kInvalidArgument, "micro-batch split {} streams x {} tokens does not cover {} tokens", ub.n_seqs,
                      ub.n_seq_tokens, T);
  }
  for (int i = 0; i < T; ++i) {
    if (ub.tokens[i] < 0 || ub.tokens[i] >= c.n_vocab) {
      return TANDEM_ERR(kInvalidArgument, "token id {} at row {} is outside the vocabulary [0, {})", ub.tokens[i], i,
                        c.n_vocab);
    }
  }
  const ArchOps* arch = find_arch(c.arch);
  if (!arch) return TANDEM_ERR(kInternal, "architecture '{}' vanished", c.arch);

  Fwd f{c, w, ub, mem, pool, *s_, T};
  const int E = c.n_embd;

  // h0 = embedding (· embedding_scale for Granite)
  float* h = f.h();
  for (int i = 0; i < T; ++i) kernels::get_row(w.token_embd, ub.tokens[i], h + static_cast<size_t>(i) * E);
  if (c.embedding_scale != 1.0f) kernels::scale(h, c.embedding_scale, T * E);

  for (int il = 0; il < c.n_layer; ++il) TANDEM_TRY(arch->layer(f, il));

  if (!logits && !embeddings) return Status::ok();
  // Output rows in chunks: final norm, embeddings, LM head, / logit_scale.
  const int chunk = s_->logit_chunk;
  float* outn = s_->outn.as<float>();
  float* lg = s_->logits.as<float>();
  int rows[64];
  int n = 0;
  auto flush = [&]() {
    if (n == 0) return;
    if (embeddings) {
      for (int j = 0; j < n; ++j) {
        std::memcpy(embeddings + static_cast<size_t>(ub.out_index[rows[j]]) * E, outn + static_cast<size_t>(j) * E,
                    sizeof(float) * E);
      }
    }
    if (logits) {
      TANDEM_PROF_SECTION(kLmHead);  // bench --profile
      kernels::matmul(w.output, outn, n, lg, pool);
      if (c.logit_scale != 1.0f) kernels::scale(lg, 1.0f / c.logit_scale, n * c.n_vocab);
      for (int j = 0; j < n; ++j) {
        std::memcpy(logits + static_cast<size_t>(ub.out_index[rows[j]]) * c.n_vocab,
                    lg + static_cast<size_t>(j) * c.n_vocab, sizeof(float) * c.n_vocab);
      }
    }
    n = 0;
  };
  for (int i = 0; i < T; ++i) {
    if (ub.out_index[i] < 0) continue;
    kernels::rms_norm(h + static_cast<size_t>(i) * E, w.output_norm.data, outn + static_cast<size_t>(n) * E, E,
                      c.norm_eps);
    rows[n++] = i;
    if (n == chunk) flush();
  }
  flush();
  return Status::ok();
}

}  // namespace tandem::model
