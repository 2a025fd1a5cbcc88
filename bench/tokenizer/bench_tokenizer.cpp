// Tokenizer throughput on English text (bytes of input per second, one thread).
// The text is the English prose found in the fixtures (story texts, docs),
// repeated to ~1 MiB; there is no cache of words in the tokenizer, so
// repetition does not flatter the numbers.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "gguf/gguf.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "bench_tokenizer: missing fixture %s\n", path.c_str());
    std::exit(1);
  }
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const std::string& english_text() {
  static const std::string text = [] {
    const std::string root = TANDEM_FIXTURES;
    std::string base = read_file(root + "/llama2c/stories260K.greedy200.txt") + "\n" +
                       read_file(root + "/llama2c/stories260K.greedy200.prompt-One-day-Tom.txt") + "\n" +
                       read_file(root + "/demo/tiny-hybrid-stories.greedy120.prompt-Once-upon-a-time.txt") + "\n" +
                       read_file(root + "/demo/PROVENANCE.md") + "\n" + read_file(root + "/README.md") + "\n";
    std::string t;
    while (t.size() < (size_t{1} << 20)) t += base;
    return t;
  }();
  return text;
}

struct Loaded {
  std::unique_ptr<tandem::gguf::File> file;
  std::unique_ptr<tandem::Tokenizer> tok;
};

const Loaded& load(const std::string& name) {
  static std::map<std::string, Loaded> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  Loaded l;
  auto f = tandem::gguf::File::open(std::string(TANDEM_FIXTURES) + "/vocab/ggml-vocab-" + name + ".gguf");
  if (!f.is_ok()) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", f.status().to_string().c_str());
    std::exit(1);
  }
  l.file = std::move(f).value();
  auto t = tandem::Tokenizer::from_gguf(*l.file);
  if (!t.is_ok()) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", t.status().to_string().c_str());
    std::exit(1);
  }
  l.tok = std::move(t).value();
  return cache.emplace(name, std::move(l)).first->second;
}

void encode_bench(benchmark::State& state, const char* vocab) {
  const tandem::Tokenizer& tok = *load(vocab).tok;
  const std::string& text = english_text();
  size_t n_tokens = 0;
  for (auto _ : state) {
    auto ids = tok.encode(text, false, false);
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["bytes_per_token"] = static_cast<double>(text.size()) / static_cast<double>(n_tokens);
}

// Byte-level BPE with the Granite-4.0 / DBRX vocabulary (the headline figure).
void BM_EncodeBpeDbrx(benchmark::State& state) { encode_bench(state, "dbrx"); }
void BM_EncodeBpeGpt2(benchmark::State& state) { encode_bench(state, "gpt-2"); }
void BM_EncodeSpmLlama(benchmark::State& state) { encode_bench(state, "llama-spm"); }

void BM_PreTokenizeDbrx(benchmark::State& state) {
  auto p = tandem::PreTokenizer::create("dbrx");
  const std::string& text = english_text();
  std::vector<std::string_view> pieces;
  for (auto _ : state) {
    pieces.clear();
    p.value()->split(text, pieces);
    benchmark::DoNotOptimize(pieces.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

void BM_DecodeDbrx(benchmark::State& state) {
  const tandem::Tokenizer& tok = *load("dbrx").tok;
  const std::string& text = english_text();
  auto ids = tok.encode(text, false, false);
  for (auto _ : state) {
    std::string s = tok.decode(ids);
    benchmark::DoNotOptimize(s.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

BENCHMARK(BM_EncodeBpeDbrx)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeBpeGpt2)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeSpmLlama)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PreTokenizeDbrx)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeDbrx)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
