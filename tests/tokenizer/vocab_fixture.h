#pragma once
// Shared helpers for tokenizer tests: load a vocab GGUF from the fixtures and
// read the reference .inp/.out test vectors.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace tandem::testing {

inline std::string fixture(const std::string& rel) { return std::string(TANDEM_FIXTURES) + "/" + rel; }

inline std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing fixture " << path;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct LoadedVocab {
  std::unique_ptr<gguf::File> file;
  std::unique_ptr<Tokenizer> tok;
};

inline LoadedVocab load_vocab(const std::string& path) {
  LoadedVocab v;
  auto f = gguf::File::open(path);
  EXPECT_TRUE(f.is_ok()) << f.status().to_string();
  if (!f.is_ok()) return v;
  v.file = std::move(f).value();
  auto t = Tokenizer::from_gguf(*v.file);
  EXPECT_TRUE(t.is_ok()) << t.status().to_string();
  if (t.is_ok()) v.tok = std::move(t).value();
  return v;
}

// .inp: each test string followed by "\n__ggml_vocab_test__\n".
inline std::vector<std::string> read_inp(const std::string& path) {
  std::string all = read_all(path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t pos = 0, k;
  while ((k = all.find(sep, pos)) != std::string::npos) {
    out.push_back(all.substr(pos, k - pos));
    pos = k + sep.size();
  }
  return out;
}

// .out: one line per string, space-separated ids.
inline std::vector<std::vector<int32_t>> read_out(const std::string& path) {
  std::string all = read_all(path);
  std::vector<std::vector<int32_t>> out;
  std::stringstream ss(all);
  std::string line;
  while (std::getline(ss, line)) {
    std::stringstream ls(line);
    std::vector<int32_t> ids;
    long v;
    while (ls >> v) ids.push_back(static_cast<int32_t>(v));
    out.push_back(ids);
  }
  return out;
}

}  // namespace tandem::testing
