// AVX2 and AVX-512 builds of the Mamba2 scan bodies (ssm_scan_body.inc), by
// target attribute only: internal linkage, so nothing here can be picked by
// the linker for a scalar caller.
#include "kernels/simd_target.h"  // first: target attributes, GCC 12 warning workaround
#include <algorithm>
#include <cmath>

#include "kernels/ssm_internal.h"

namespace tandem::kernels {

namespace avx2 {
#define TANDEM_TGT TANDEM_TARGET_AVX2
#include "kernels/ssm_scan_body.inc"
#undef TANDEM_TGT
}  // namespace avx2

namespace avx512 {
#define TANDEM_TGT TANDEM_TARGET_AVX512
#include "kernels/ssm_scan_body.inc"
#undef TANDEM_TGT
}  // namespace avx512

Mamba2HeadFn mamba2_seq_head_avx2() { return avx2::m2_seq_head; }
Mamba2HeadFn mamba2_seq_head_avx512() { return avx512::m2_seq_head; }
Mamba2ChunkFn mamba2_chunk_head_avx2() { return avx2::m2_chunk_head; }
Mamba2ChunkFn mamba2_chunk_head_avx512() { return avx512::m2_chunk_head; }

}  // namespace tandem::kernels
