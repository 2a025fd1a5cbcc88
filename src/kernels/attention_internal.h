#pragma once
// Attention work-item kernels: items [i0, i1) of the n_tokens*n_head pairs.
#include <cstdint>

#include "kernels/kernels.h"

namespace tandem::kernels {

using AttentionRowsFn = void (*)(const AttentionArgs& a, int64_t i0, int64_t i1);
void attention_rows_scalar(const AttentionArgs& a, int64_t i0, int64_t i1);
AttentionRowsFn attention_rows_avx2();    // nullptr when not provided
AttentionRowsFn attention_rows_avx512();

}  // namespace tandem::kernels
