#pragma once
// Drives a Runner over one sequence with the test-only memory.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/thread_pool.h"
#include "model/model.h"
#include "test_memory.h"

namespace tandem::testing {

inline std::unique_ptr<model::Model> load_fixture_model(const std::string& name) {
  auto r = model::Model::load(fixtures() + "/models/" + name + ".gguf");
  EXPECT_TRUE(r.is_ok()) << name << ": " << r.status().to_string();
  if (!r.is_ok()) return nullptr;
  return std::move(r).value();
}

// Feeds `tokens` (positions 0..n-1 of sequence 0) in micro-batches of `ub`
// tokens; returns logits of every position, [n][n_vocab].
inline std::vector<float> run_sequence(const model::Model& m, const std::vector<int32_t>& tokens, int ub,
                                       kernels::ThreadPool& pool, DType kv_type = DType::F16) {
  const int n = static_cast<int>(tokens.size());
  const int V = m.config().n_vocab;
  std::vector<float> logits(size_t(n) * V, 0.0f);
  model::Runner runner(m, ub);
  TestMemory mem(m.layer_specs(), n, 1, kv_type);
  for (int i0 = 0; i0 < n; i0 += ub) {
    const int T = std::min(ub, n - i0);
    memory::UBatch b;
    b.n_tokens = T;
    b.n_seqs = 1;
    b.n_seq_tokens = T;
    for (int i = 0; i < T; ++i) {
      b.tokens.push_back(tokens[i0 + i]);
      b.pos.push_back(float(i0 + i));
      b.out_index.push_back(i0 + i);
    }
    EXPECT_TRUE(mem.prepare(b, std::vector<int>(T, 0)));
    Status st = runner.forward(b, mem, logits.data(), nullptr, pool);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    if (!st.is_ok()) break;
  }
  return logits;
}

}  // namespace tandem::testing
