// Thread pool semantics and thread-count invariance of every pooled kernel.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <cstring>

#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "test_util.h"

namespace tandem::kernels {
namespace {
using testing::randn;

TEST(ThreadPool, CoversEveryIndexOnceWithStaticRanges) {
  for (int nt : {1, 2, 3, 5}) {
    ThreadPool pool(nt);
    EXPECT_EQ(pool.size(), nt);
    for (int64_t n : {0, 1, 2, 3, 7, 100, 1001}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> bad{0};
      pool.parallel_for(n, [&](int64_t b, int64_t e, int t) {
        if (t < 0 || t >= nt || b >= e) bad++;
        // static partition: thread t owns [n*t/T, n*(t+1)/T)
        if (nt > 1 && n > 1 && (b != n * t / nt || e != n * (t + 1) / nt)) bad++;
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
      EXPECT_EQ(bad.load(), 0);
      for (auto& h : hits) ASSERT_EQ(h.load(), 1);
    }
  }
}

TEST(ThreadPool, BalancedCoversEveryIndexOnce) {
  for (int nt : {1, 2, 3, 5}) {
    ThreadPool pool(nt);
    for (int64_t grain : {1, 3, 64})
      for (int64_t n : {0, 1, 2, 3, 7, 100, 1001}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::atomic<int> bad{0};
        pool.parallel_for_balanced(n, grain, [&](int64_t b, int64_t e, int t) {
          if (t < 0 || t >= nt || b >= e || (nt > 1 && n > 1 && e - b > grain)) bad++;  // one thread: inline, whole range
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
        });
        EXPECT_EQ(bad.load(), 0) << nt << " threads, grain " << grain << ", n " << n;
        for (auto& h : hits) ASSERT_EQ(h.load(), 1);
      }
  }
}

// A thread held up in its first chunk: the others finish its range, from
// the back, while it is stuck.
TEST(ThreadPool, BalancedIdleThreadsTakeOverASlowThreadsRange) {
  ThreadPool pool(2);
  const int64_t n = 40;
  std::vector<int> owner(n, -1);
  std::atomic<bool> released{false};
  pool.parallel_for_balanced(n, 2, [&](int64_t b, int64_t e, int t) {
    if (b == 20) {  // the first chunk of thread 1's static range [20, 40)
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (!released.load() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    }
    for (int64_t i = b; i < e; ++i) owner[static_cast<size_t>(i)] = t;
    if (b == 22 || e == 22) released = true;  // thread 0 reached the stuck thread's range
  });
  for (int64_t i = 0; i < 20; ++i) EXPECT_EQ(owner[static_cast<size_t>(i)], 0) << i;
  // everything after the stuck chunk was taken by thread 0 (it only returns
  // from the stuck chunk once thread 0 has stolen down to it)
  EXPECT_EQ(owner[20], owner[21]);
  for (int64_t i = 22; i < n; ++i) EXPECT_EQ(owner[static_cast<size_t>(i)], 0) << i;
  EXPECT_TRUE(released.load());
}

TEST(ThreadPool, ManyQuickJobsAndNestedCallsRunInline) {
  ThreadPool pool(3);
  std::atomic<int64_t> sum{0};
  for (int rep = 0; rep < 500; ++rep)
    pool.parallel_for(10, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) sum += i;
    });
  EXPECT_EQ(sum.load(), 500 * 45);
  std::atomic<int> inner{0};
  pool.parallel_for(3, [&](int64_t, int64_t, int) {
    pool.parallel_for(4, [&](int64_t b, int64_t e, int) { inner += static_cast<int>(e - b); });
  });
  EXPECT_EQ(inner.load(), 12);
}

// Jobs spaced out so the workers fall asleep between them (the wake-up path).
TEST(ThreadPool, WakesSleepingWorkers) {
  for (int nt : {2, 3}) {
    ThreadPool pool(nt);
    std::atomic<int> total{0};
    for (int rep = 0; rep < 20; ++rep) {
      std::this_thread::sleep_for(std::chrono::milliseconds(3));
      pool.parallel_for(nt, [&](int64_t b, int64_t e, int) { total += static_cast<int>(e - b); });
    }
    EXPECT_EQ(total.load(), 20 * nt);
  }
}

// Every pooled kernel gives bit-identical results with 1, 2 and 3 threads.
TEST(ThreadInvariance, KernelsIdenticalFor123Threads) {
  std::vector<std::vector<float>> results[3];
  for (int nt = 1; nt <= 3; ++nt) {
    ThreadPool pool(nt);
    std::vector<std::vector<float>>& r = results[nt - 1];
    // matmul, quantized and float, 1 and 9 columns
    for (DType t : {DType::F32, DType::Q4_K, DType::Q8_0, DType::F16}) {
      const int64_t rows = 67, cols = 256;
      std::vector<float> wf = randn(rows * cols, 1), x = randn(9 * cols, 2);
      const size_t rb = row_bytes(t, cols);
      std::vector<unsigned char> wq(rb * rows);
      for (int64_t i = 0; i < rows; ++i) quantize_row(t, wf.data() + i * cols, wq.data() + i * rb, cols);
      for (int nc : {1, 9}) {
        std::vector<float> y(nc * rows);
        matmul(Matrix{t, wq.data(), rows, cols, rb}, x.data(), nc, y.data(), pool);
        r.push_back(y);
      }
    }
    // conv
    {
      const int C = 70, T = 6, W = 4;
      std::vector<float> x = randn(C * T, 3), w = randn(C * W, 4), st = randn(C * (W - 1), 5), out(C * T);
      float* sp = st.data();
      ConvArgs a;
      a.x = x.data(); a.x_stride = C; a.n_seqs = 1; a.n_seq_tokens = T; a.channels = C; a.width = W;
      a.state = &sp; a.w = w.data(); a.out = out.data();
      ssm_conv(a, pool);
      r.push_back(out);
      r.push_back(st);
    }
    // mamba2 (both forms) and mamba1
    for (int form = 0; form < 2; ++form) {
      const int H = 5, P = 4, G = 1, N = 8, T = 40;
      std::vector<float> x = randn(T * H * P, 6), dt = randn(T * H, 7), A(H, -0.5f), B = randn(T * G * N, 8),
                         C = randn(T * G * N, 9), st = randn(H * P * N, 10), y(T * H * P);
      float* sp = st.data();
      Mamba2ScanArgs a;
      a.n_seqs = 1; a.n_seq_tokens = T; a.n_head = H; a.head_dim = P; a.n_group = G; a.d_state = N;
      a.x = x.data(); a.x_stride = H * P; a.dt = dt.data(); a.dt_stride = H; a.A = A.data();
      a.B = B.data(); a.B_stride = N; a.C = C.data(); a.C_stride = N; a.state = &sp; a.y = y.data(); a.y_stride = H * P;
      if (form == 0) ssm_scan_mamba2_sequential(a, pool);
      else ssm_scan_mamba2_chunked(a, 16, pool);
      r.push_back(y);
      r.push_back(st);
    }
    {
      const int Di = 35, N = 4, T = 3;
      std::vector<float> x = randn(T * Di, 11), dt = randn(T * Di, 12), A(Di * N, -1.0f), B = randn(T * N, 13),
                         C = randn(T * N, 14), st = randn(Di * N, 15), y(T * Di);
      float* sp = st.data();
      Mamba1ScanArgs a;
      a.n_seqs = 1; a.n_seq_tokens = T; a.d_inner = Di; a.d_state = N;
      a.x = x.data(); a.x_stride = Di; a.dt = dt.data(); a.dt_stride = Di; a.A = A.data();
      a.B = B.data(); a.B_stride = N; a.C = C.data(); a.C_stride = N; a.state = &sp; a.y = y.data(); a.y_stride = Di;
      ssm_scan_mamba1(a, pool);
      r.push_back(y);
      r.push_back(st);
    }
    // attention
    {
      const int T = 5, H = 4, KVH = 2, D = 8, n_kv = 9;
      std::vector<float> q = randn(T * H * D, 16), k = randn(n_kv * KVH * D, 17), v = randn(n_kv * KVH * D, 18),
                         out(T * H * D);
      AttentionArgs a;
      a.q = q.data(); a.n_tokens = T; a.n_head = H; a.n_kv_head = KVH; a.head_dim_k = D; a.head_dim_v = D;
      a.kv_type = DType::F32; a.k = k.data(); a.v = v.data(); a.k_row_bytes = KVH * D * 4; a.v_row_bytes = KVH * D * 4;
      a.n_kv = n_kv; a.out = out.data();
      attention(a, pool);
      r.push_back(out);
    }
  }
  ASSERT_EQ(results[0].size(), results[1].size());
  for (size_t i = 0; i < results[0].size(); ++i) {
    EXPECT_EQ(std::memcmp(results[0][i].data(), results[1][i].data(), results[0][i].size() * 4), 0) << "item " << i;
    EXPECT_EQ(std::memcmp(results[0][i].data(), results[2][i].data(), results[0][i].size() * 4), 0) << "item " << i;
  }
}

}  // namespace
}  // namespace tandem::kernels
