// Kernel benchmarks on Granite-4.0-H-350M shapes, plus the machine's streaming
// read bandwidth and FMA peak measured in the same process (so the matmul
// figures can be read as a fraction of what the hardware gives).
//   bench_kernels --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
// GCC 12 false positive inside its own _mm512_reduce_add_ps.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "core/aligned.h"
#include "kernels/cpu.h"
#include "kernels/gemm_tiled.h"
#include "kernels/kernels.h"
#include "kernels/ssm_internal.h"
#include "kernels/thread_pool.h"

namespace tk = tandem::kernels;
using tandem::DType;

namespace {

// TANDEM_BENCH_THREADS=n overrides the thread count (default: all cores).
int bench_threads() {
  if (const char* e = std::getenv("TANDEM_BENCH_THREADS")) return std::max(1, std::atoi(e));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

tk::ThreadPool& pool() {
  static tk::ThreadPool p(bench_threads());
  return p;
}

// (n_in x n_out) pairs from the issue: weight rows = n_out, cols = n_in.
const int64_t kShapes[][2] = {{768, 3376}, {1536, 768}, {768, 2048}, {2048, 768}, {768, 100352}};
const DType kTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                        DType::Q5_1, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// Weight matrix: 64 distinct quantized rows tiled over all rows (quantizing
// 77M elements for the vocab shape would take far longer than the benchmark).
struct Weights {
  tandem::AlignedBuffer buf;
  tk::Matrix m;
};

Weights make_weights(DType t, int64_t rows, int64_t cols) {
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 1.0f / std::sqrt(float(cols)));
  const size_t rb = tandem::row_bytes(t, cols);
  Weights w{tandem::AlignedBuffer(rb * rows), {}};
  const int64_t distinct = std::min<int64_t>(64, rows);
  std::vector<float> row(cols);
  for (int64_t r = 0; r < distinct; ++r) {
    for (float& v : row) v = nd(rng);
    tk::quantize_row(t, row.data(), w.buf.data() + r * rb, cols);
  }
  for (int64_t r = distinct; r < rows; ++r) std::memcpy(w.buf.data() + r * rb, w.buf.data() + (r % distinct) * rb, rb);
  w.m = tk::Matrix{t, w.buf.data(), rows, cols, rb};
  return w;
}

// tiled = false: the row-block kernels for every column count (the path
// before gemm_tiled.h), for A/B figures in one process.
void BM_Matmul(benchmark::State& st, DType t, int64_t n_in, int64_t n_out, int n_cols, bool tiled) {
  tk::set_gemm_tiled_enabled(tiled);
  Weights w = make_weights(t, n_out, n_in);
  std::vector<float> x(static_cast<size_t>(n_in * n_cols)), y(static_cast<size_t>(n_out * n_cols));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& v : x) v = nd(rng);
  for (auto _ : st) {
    tk::matmul(w.m, x.data(), n_cols, y.data(), pool());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double bytes = double(w.buf.size());
  st.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * n_in * n_out * n_cols * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  tk::set_gemm_tiled_enabled(true);
}

// Decode GEMV A/B (1..8 columns): the tiled-order GEMV (gemv_tiled_avx512,
// what matmul runs for the types in its tiled set) against the decode kernels
// matmul runs with the tiled path off (VNNI GEMV for Q8_0 / Q4_K, the
// row-block kernels otherwise), both from f32 activations (activation
// conversion included). Registered side by side so one process compares them.
void BM_Gemv(benchmark::State& st, DType t, int64_t n_in, int64_t n_out, int n_cols, bool tiled_order) {
  Weights w = make_weights(t, n_out, n_in);
  std::vector<float> x(static_cast<size_t>(n_in * n_cols)), y(static_cast<size_t>(n_out * n_cols));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& v : x) v = nd(rng);
  const tk::GemmTiledFn g = tk::gemv_tiled_avx512(t);
  tk::GemmTask task;
  task.w = &w.m;
  task.n_cols = n_cols;
  task.y = y.data();
  task.act = x.data();
  task.act_row_bytes = static_cast<size_t>(n_in) * sizeof(float);
  tk::set_gemm_tiled_enabled(false);
  for (auto _ : st) {
    if (tiled_order) g(task, pool());
    else tk::matmul(w.m, x.data(), n_cols, y.data(), pool());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  tk::set_gemm_tiled_enabled(true);
  st.counters["GB/s"] = benchmark::Counter(double(w.buf.size()), benchmark::Counter::kIsIterationInvariantRate,
                                           benchmark::Counter::kIs1000);
}

// Decode-like chain: n_mats distinct weight matrices (together far larger
// than the last-level cache) multiplied by one column in turn, as a decode
// step does layer after layer; against one matrix of the same total rows
// (n_mats = 1) the difference is the per-call cost (dispatch, barrier,
// prefetcher ramp-up). Each matrix is a copy of one quantized matrix.
// layout 0: one allocation per matrix; 1: the matrices back to back in one
// allocation; 2: the same (cache-resident) matrix n_mats times.
void BM_GemvChain(benchmark::State& st, DType t, int64_t n_in, int64_t n_out, int n_mats, int layout, bool balanced) {
  pool().set_balanced(balanced);
  const int64_t total_rows = n_out * 96 * 768 / n_in;  // 96 matrices' worth of 768-wide rows
  const int64_t rows = total_rows / n_mats;
  Weights proto = make_weights(t, rows, n_in);
  std::vector<tandem::AlignedBuffer> bufs;
  std::vector<tk::Matrix> mats;
  if (layout == 1) bufs.emplace_back(proto.buf.size() * n_mats);
  for (int i = 0; i < n_mats; ++i) {
    std::byte* p = proto.buf.data();
    if (layout == 0) {
      bufs.emplace_back(proto.buf.size());
      p = bufs.back().data();
    } else if (layout == 1) {
      p = bufs[0].data() + proto.buf.size() * i;
    }
    if (layout != 2) std::memcpy(p, proto.buf.data(), proto.buf.size());
    mats.push_back(tk::Matrix{t, p, rows, n_in, proto.m.row_stride});
  }
  std::vector<float> x(static_cast<size_t>(n_in)), y(static_cast<size_t>(rows));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& v : x) v = nd(rng);
  for (auto _ : st) {
    for (const tk::Matrix& m : mats) tk::matmul(m, x.data(), 1, y.data(), pool());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  st.counters["GB/s"] = benchmark::Counter(double(proto.buf.size()) * n_mats, benchmark::Counter::kIsIterationInvariantRate,
                                           benchmark::Counter::kIs1000);
  pool().set_balanced(true);
  st.counters["us/call"] = benchmark::Counter(double(n_mats), benchmark::Counter::kIsIterationInvariantRate |
                                                                  benchmark::Counter::kInvert);
}

// An empty job through the pool: the fixed cost of one parallel region.
void BM_PoolRoundTrip(benchmark::State& st) {
  std::vector<int64_t> sink(64);
  for (auto _ : st) {
    pool().parallel_for(pool().size(), [&](int64_t b, int64_t, int t) { sink[t * 8] += b; });
    benchmark::DoNotOptimize(sink.data());
  }
}

// Streaming read of a 512 MiB buffer with all threads (sum of 64-byte lines).
__attribute__((target("avx2"))) uint64_t sum_range(const uint8_t* p, size_t n) {
  __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
  for (size_t i = 0; i + 64 <= n; i += 64) {
    acc0 = _mm256_add_epi64(acc0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    acc1 = _mm256_add_epi64(acc1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
  }
  acc0 = _mm256_add_epi64(acc0, acc1);
  alignas(32) uint64_t v[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(v), acc0);
  return v[0] + v[1] + v[2] + v[3];
}

void BM_ReadBandwidth(benchmark::State& st) {
  const size_t n = size_t(512) << 20;
  tandem::AlignedBuffer buf(n);
  std::memset(buf.data(), 1, n);
  const uint8_t* p = reinterpret_cast<const uint8_t*>(buf.data());
  std::vector<uint64_t> sums(64);
  for (auto _ : st) {
    const int64_t chunks = n / 4096;
    pool().parallel_for(chunks, [&](int64_t b, int64_t e, int t) { sums[t] += sum_range(p + b * 4096, (e - b) * 4096); });
    benchmark::DoNotOptimize(sums.data());
  }
  st.counters["GB/s"] = benchmark::Counter(double(n), benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// FMA peak: independent accumulator chains (enough to cover latency x ports).
__attribute__((target("avx512f"))) float fma_loop512(int64_t iters) {
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(float(i) * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t k = 0; k < iters; ++k)
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) float fma_loop256(int64_t iters) {
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(float(i) * 1e-3f);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t k = 0; k < iters; ++k)
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
  __m256 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
  alignas(32) float v[8];
  _mm256_store_ps(v, s);
  return v[0] + v[7];
}

void BM_FmaPeak(benchmark::State& st, bool wide) {
  const int64_t iters = 1 << 20;
  std::vector<float> out(64);
  for (auto _ : st) {
    pool().parallel_for(pool().size(), [&](int64_t, int64_t, int t) {
      out[t] += wide ? fma_loop512(iters) : fma_loop256(iters);
    });
    benchmark::DoNotOptimize(out.data());
  }
  const double flops = 2.0 * (wide ? 16 : 8) * 12 * double(iters) * pool().size();
  st.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Granite-4.0-H-350M Mamba2 layer: d_inner 1536, 48 heads of 32, 1 group,
// d_state 128 (P = 64 gives the 3072-wide variant). legacy: the previous
// sequential kernels (ssm_internal.h), for side-by-side figures.
void BM_Mamba2Scan(benchmark::State& st, int method, int n_seqs, int T, int P, bool legacy) {
  const int H = 48, G = 1, N = 128;
  const size_t rows = size_t(n_seqs) * T;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto fill = [&](size_t n, float add) { std::vector<float> v(n); for (float& f : v) f = nd(rng) + add; return v; };
  std::vector<float> x = fill(rows * H * P, 0), dt = fill(rows * H, -3), B = fill(rows * G * N, 0), C = fill(rows * G * N, 0);
  std::vector<float> A(H, -0.5f), D(H, 1.0f), y(rows * H * P);
  std::vector<std::vector<float>> states(n_seqs, std::vector<float>(size_t(H) * P * N));
  std::vector<float*> sp;
  for (auto& s : states) sp.push_back(s.data());
  tk::Mamba2ScanArgs a;
  a.n_seqs = n_seqs; a.n_seq_tokens = T; a.n_head = H; a.head_dim = P; a.n_group = G; a.d_state = N;
  a.x = x.data(); a.x_stride = size_t(H) * P; a.dt = dt.data(); a.dt_stride = H; a.A = A.data();
  a.B = B.data(); a.B_stride = size_t(G) * N; a.C = C.data(); a.C_stride = size_t(G) * N; a.D = D.data();
  a.state = sp.data(); a.y = y.data(); a.y_stride = size_t(H) * P;
  tk::set_ssm_legacy(legacy);
  for (auto _ : st) {
    if (method == 0) tk::ssm_scan_mamba2_sequential(a, pool());
    else tk::ssm_scan_mamba2_chunked(a, method, pool());
    benchmark::DoNotOptimize(y.data());
  }
  tk::set_ssm_legacy(false);
  st.counters["tok/s"] = benchmark::Counter(double(rows), benchmark::Counter::kIsIterationInvariantRate);
}

// Causal conv + SiLU of the same layer: channels = d_inner + 2 N (1792), the
// input rows strided as in the in_proj output (z | xBC | dt).
void BM_SsmConv(benchmark::State& st, int channels, int n_seqs, int T, bool legacy) {
  const int W = 4;
  const size_t stride = size_t(channels) * 2;
  const size_t rows = size_t(n_seqs) * T;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto fill = [&](size_t n) { std::vector<float> v(n); for (float& f : v) f = nd(rng); return v; };
  std::vector<float> x = fill(rows * stride), w = fill(size_t(channels) * W), b = fill(channels);
  std::vector<float> out(rows * channels);
  std::vector<std::vector<float>> states(n_seqs, fill(size_t(W - 1) * channels));
  std::vector<float*> sp;
  for (auto& s : states) sp.push_back(s.data());
  tk::ConvArgs a;
  a.x = x.data(); a.x_stride = stride; a.n_seqs = n_seqs; a.n_seq_tokens = T; a.channels = channels; a.width = W;
  a.state = sp.data(); a.w = w.data(); a.bias = b.data(); a.silu = true; a.out = out.data();
  tk::set_ssm_legacy(legacy);
  for (auto _ : st) {
    tk::ssm_conv(a, pool());
    benchmark::DoNotOptimize(out.data());
  }
  tk::set_ssm_legacy(false);
  st.counters["tok/s"] = benchmark::Counter(double(rows), benchmark::Counter::kIsIterationInvariantRate);
}

bool has_simd_kernel(DType t) {
  switch (t) {
    case DType::F32: case DType::F16: case DType::BF16: case DType::Q8_0: case DType::Q4_0:
    case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
      return true;
    default: return false;
  }
}

void register_all() {
  benchmark::RegisterBenchmark("ReadBandwidth", BM_ReadBandwidth)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("PoolRoundTrip", BM_PoolRoundTrip)->UseRealTime();
  {
    // type, n_in, n_out, matrices, layout, balanced
    struct Chain { DType t; int64_t n_in, n_out; int mats, layout; bool bal; };
    std::vector<Chain> chains;
    for (DType t : {DType::Q8_0, DType::Q4_K, DType::F16}) {
      for (bool bal : {false, true}) chains.push_back({t, 768, 2048, 1, 0, bal});
      for (int layout : {0, 1, 2})
        for (bool bal : {false, true}) chains.push_back({t, 768, 2048, 96, layout, bal});
      // the 1b preset's ffn shape: 48 matrices of the same bytes
      for (bool bal : {false, true}) chains.push_back({t, 1536, 4096, 48, 0, bal});
    }
    for (const Chain& c : chains)
      benchmark::RegisterBenchmark((std::string("GemvChain/") + std::string(tandem::dtype_name(c.t)) + "/" +
                                    std::to_string(c.n_in) + "x" + std::to_string(c.n_out) + "/mats:" +
                                    std::to_string(c.mats) + "/layout:" + std::to_string(c.layout) +
                                    (c.bal ? "/balanced" : "/static")).c_str(),
                                   BM_GemvChain, c.t, c.n_in, c.n_out, c.mats, c.layout, c.bal)
          ->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  benchmark::RegisterBenchmark("FmaPeak/avx2", BM_FmaPeak, false)->Unit(benchmark::kMillisecond)->UseRealTime();
  if (tk::cpu_features().avx512f)
    benchmark::RegisterBenchmark("FmaPeak/avx512", BM_FmaPeak, true)->Unit(benchmark::kMillisecond)->UseRealTime();
  for (DType t : kTypes)
    for (const auto& s : kShapes)
      for (int nc : {1, 512}) {
        if (nc == 512 && (s[1] > 4096 || !has_simd_kernel(t))) continue;  // see docs/benchmarks.md
        const std::string name = std::string("Matmul/") + std::string(tandem::dtype_name(t)) + "/" +
                                 std::to_string(s[0]) + "x" + std::to_string(s[1]) + "/cols:" + std::to_string(nc);
        benchmark::RegisterBenchmark(name.c_str(), BM_Matmul, t, s[0], s[1], nc, true)->Unit(benchmark::kMillisecond)->UseRealTime();
        if (nc == 512 && tk::gemm_tiled_avx512(t) && tk::active_cpu_path() == tk::CpuPath::kAvx512)
          benchmark::RegisterBenchmark((name + "/rowblock").c_str(), BM_Matmul, t, s[0], s[1], nc, false)
              ->Unit(benchmark::kMillisecond)->UseRealTime();
      }
  if (tk::active_cpu_path() == tk::CpuPath::kAvx512) {
    // Weight shapes of the 350m preset (n_in x n_out): ssm_in, ssm_out, ffn up/gate, ffn down, output.
    const int64_t gemv_shapes[][2] = {{768, 3376}, {1536, 768}, {768, 2048}, {2048, 768}, {768, 100352}};
    for (DType t : {DType::Q8_0, DType::F16, DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K})
      for (const auto& s : gemv_shapes)
        for (int nc : {1, 4, 8}) {
          if (!tk::gemv_tiled_avx512(t)) continue;
          const std::string name = std::string("Gemv/") + std::string(tandem::dtype_name(t)) + "/" +
                                   std::to_string(s[0]) + "x" + std::to_string(s[1]) + "/cols:" + std::to_string(nc);
          benchmark::RegisterBenchmark((name + "/tiled").c_str(), BM_Gemv, t, s[0], s[1], nc, true)
              ->Unit(benchmark::kMicrosecond)->UseRealTime();
          benchmark::RegisterBenchmark((name + "/decode").c_str(), BM_Gemv, t, s[0], s[1], nc, false)
              ->Unit(benchmark::kMicrosecond)->UseRealTime();
        }
  }
  for (int method : {0, 64, 128, 256}) {
    const std::string m = method == 0 ? "sequential" : "chunked" + std::to_string(method);
    benchmark::RegisterBenchmark(("Mamba2Scan/" + m + "/seqs:1/T:512").c_str(), BM_Mamba2Scan, method, 1, 512, 32, false)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  // Old (legacy) vs new sequential kernels, side by side.
  for (int P : {32, 64})
    for (bool legacy : {true, false}) {
      const std::string v = legacy ? "/legacy" : "/new";
      const std::string p = "/P:" + std::to_string(P);
      benchmark::RegisterBenchmark(("Mamba2Scan/sequential" + p + "/seqs:1/T:512" + v).c_str(), BM_Mamba2Scan, 0, 1,
                                   512, P, legacy)->Unit(benchmark::kMillisecond)->UseRealTime();
      benchmark::RegisterBenchmark(("Mamba2Scan/decode" + p + "/seqs:8/T:1" + v).c_str(), BM_Mamba2Scan, 0, 8, 1, P,
                                   legacy)->Unit(benchmark::kMicrosecond)->UseRealTime();
    }
  for (int C : {1792, 6400})
    for (bool legacy : {true, false}) {
      const std::string v = legacy ? "/legacy" : "/new";
      const std::string c = "/C:" + std::to_string(C);
      benchmark::RegisterBenchmark(("SsmConv" + c + "/seqs:1/T:512" + v).c_str(), BM_SsmConv, C, 1, 512, legacy)
          ->Unit(benchmark::kMillisecond)->UseRealTime();
      benchmark::RegisterBenchmark(("SsmConv" + c + "/seqs:8/T:1" + v).c_str(), BM_SsmConv, C, 8, 1, legacy)
          ->Unit(benchmark::kMicrosecond)->UseRealTime();
    }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("cpu_path", tk::cpu_path_name(tk::active_cpu_path()));
  benchmark::AddCustomContext("threads", std::to_string(bench_threads()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
