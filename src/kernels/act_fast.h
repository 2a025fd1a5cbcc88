#pragma once
// Vectorized SiLU-gated products for the decode path (each token evaluates
// ~7k exponentials per Granite layer; glibc's scalar expf made that a
// measurable slice of a memory-bound step). exp is evaluated with a
// Cody-Waite range reduction and a degree-7 polynomial (max rel. error
// ~2 ulp against std::exp); the scalar twin (TANDEM_CPU=scalar) is
// kernels::swiglu / kernels::silu with std::exp.
namespace tandem::kernels {

// out[i] = silu(gate[i]) * up[i]; out may alias gate or up.
void swiglu_fast(const float* gate, const float* up, float* out, int n);
// x[i] = silu(x[i]).
void silu_fast(float* x, int n);

// False when the environment sets TANDEM_DECODE_FAST=0 (read once): the
// decode-specific kernels (this file's polynomial exp, the dedicated GEMV
// kernels of gemv_internal.h) then fall back to the generic ones, so both
// can be compared in one binary (docs/benchmarks.md, "Generation (decode)").
bool decode_fast_enabled();

}  // namespace tandem::kernels
