#pragma once
// Shared pieces of the state-space kernels.
#include <cmath>
#include <vector>

#include "kernels/cpu.h"

#include "kernels/kernels.h"

namespace tandem::kernels {

// softplus(x) = x for x > 20, else log1p(exp(x)) (the reference's cut-off).
inline float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

// Micro-batches with at least this many tokens per sequence use the chunked
// form (effectively never for now: see ssm_scan_mamba2).
inline constexpr int kMamba2ChunkMinTokens = 1 << 30;
inline constexpr int kMamba2DefaultChunk = 64;

// Scratch of the chunked scan (per thread).
struct ChunkScratch {
  std::vector<float> dts, cs, w, ws;
  void resize(int L) {
    dts.resize(static_cast<size_t>(L));
    cs.resize(static_cast<size_t>(L));
    ws.resize(static_cast<size_t>(L));
    w.resize(static_cast<size_t>(L) * L);
  }
};

// One (sequence, head) over all its tokens: sequential form, and chunked
// form with chunk length L. Compiled per CPU path from ssm_scan_body.inc.
using Mamba2HeadFn = void (*)(const Mamba2ScanArgs& a, int s, int h);
using Mamba2ChunkFn = void (*)(const Mamba2ScanArgs& a, int s, int h, int L, ChunkScratch& sc);
Mamba2HeadFn mamba2_seq_head_fn(CpuPath p);      // the active path's kernel (scalar twin fallback)
Mamba2ChunkFn mamba2_chunk_head_fn(CpuPath p);
Mamba2HeadFn mamba2_seq_head_avx2();             // ssm_simd.cpp
Mamba2HeadFn mamba2_seq_head_avx512();
Mamba2ChunkFn mamba2_chunk_head_avx2();
Mamba2ChunkFn mamba2_chunk_head_avx512();
// Intrinsics builds of the sequential form (ssm_scan_fast.cpp): the float
// operations of mamba2_seq_head_avx2/avx512 above as an optimized build
// compiles them (bit-identical; AVX2 when d_state % 16 == 0), with a
// vertical reduction and the order fixed by intrinsics, not by the
// compiler's contraction. They run
// tokens [t_begin, t_end) of one (sequence, head), so the driver can walk
// blocks of tokens across the heads (pages of x/y are then shared).
using Mamba2HeadRangeFn = void (*)(const Mamba2ScanArgs& a, int s, int h, int t_begin, int t_end);
Mamba2HeadRangeFn mamba2_seq_head_fast_avx2();
Mamba2HeadRangeFn mamba2_seq_head_fast_avx512();
// Prefetches (to L2) the x / dt / B / C / y lines of tokens [t0, t1) for the
// (sequence, head) items [i0, i1) (item = s * n_head + h).
void mamba2_prefetch_block(const Mamba2ScanArgs& a, int64_t i0, int64_t i1, int t0, int t1);
// Prefetches (to L2) the state of item i (sequence i / n_head, head i % n_head)
// that the scan reads next: state_in while t == 0 of an out-of-place call.
void mamba2_prefetch_state(const Mamba2ScanArgs& a, int64_t i, int t);
// The source of item (s, h)'s state when the scan starts at token 0: state_in
// (out of place) or the state itself. [head_dim][d_state]
inline const float* mamba2_state_src(const Mamba2ScanArgs& a, int s, int h) {
  const float* base = a.state_in ? a.state_in[s] : a.state[s];
  return base + static_cast<size_t>(h) * a.head_dim * a.d_state;
}
// Out-of-place calls on kernels that update in place: copy item (s, h)'s old
// state into the destination right before it is updated (it is then in cache).
void mamba2_adopt_head(const Mamba2ScanArgs& a, int s, int h);

// Benchmarks and tests: route the SIMD paths of the sequential scan and of
// the conv back to the previous (compiler-vectorized / per-channel) kernels,
// so old and new can be timed side by side in one process. Default false;
// TANDEM_SSM_LEGACY=1 in the environment sets it at start.
void set_ssm_legacy(bool on);
bool ssm_legacy();

}  // namespace tandem::kernels
