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

}  // namespace tandem::kernels
