#pragma once
// Forward-pass state shared by the layer builders and the per-arch layer
// functions (internal to src/model): the micro-batch, its layer memory, the
// thread pool and the preallocated activation scratch.
#include <cstddef>
#include <vector>

#include "core/aligned.h"
#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "memory/views.h"
#include "model/model.h"
#include "model/weights.h"

namespace tandem::model {

// Activation buffers, each sized for max_tokens rows of its widest use.
// Row-major [token][feature] f32 unless noted.
struct Scratch {
  int max_tokens = 0;
  // residual stream and per-layer temporaries, [T][n_embd] each
  AlignedBuffer h, xn, mix, mix2, ffo;
  // attention: q [T][n_head*hd_k], k [T][n_kv*hd_k], v [T][n_kv*hd_v], att [T][n_head*hd_v]
  AlignedBuffer q, k, v, att;
  // state space: proj [T][d_in_proj], conv [T][conv_channels], y [T][d_inner],
  // xdb [T][dt_rank + 2N] and dt [T][d_inner] (Mamba1), dtin [T][dt_rank] (Mamba1)
  AlignedBuffer proj, conv, y, xdb, dt, dtin;
  // feed-forward: ffa/ffb [T][max(n_ff, n_ff_shexp)]
  AlignedBuffer ffa, ffb;
  // MoE: router [T][n_expert], sel_idx/sel_w [T][k], gx/gy [T][n_embd],
  // slot_out [T][k][n_embd], rows [T] (token list of one expert), slots [T]
  AlignedBuffer router, sel_idx, sel_w, gx, gy, slot_out, rows, slots;
  // outputs: outn [chunk][n_embd], logits [chunk][n_vocab]
  AlignedBuffer outn, logits;
  int logit_chunk = 0;

  void allocate(const ModelConfig& c, int max_tokens);
};

struct Fwd {
  const ModelConfig& cfg;
  const Weights& w;
  const memory::UBatch& ub;
  memory::LayerMemory& mem;
  kernels::ThreadPool& pool;
  Scratch& s;
  int T;  // ub.n_tokens

  float* h() { return s.h.as<float>(); }
  float* xn() { return s.xn.as<float>(); }
  float* mix() { return s.mix.as<float>(); }
  float* mix2() { return s.mix2.as<float>(); }
  float* ffo() { return s.ffo.as<float>(); }
};

}  // namespace tandem::model
