#pragma once
// Test helper: each shared fixture is opened (parsed and validated) once per
// test program; parsing the big vocabularies dominates run time under sanitizers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"

namespace tandem::gguf::testing {

// `rel` is relative to the fixtures folder, e.g. "models/tiny-llama.gguf".
// nullptr (and a test failure) when the file is missing or refused.
inline const File* fixture(const std::string& rel) {
  static std::map<std::string, std::unique_ptr<File>> cache;
  auto it = cache.find(rel);
  if (it != cache.end()) return it->second.get();
  auto r = File::open(std::string(TANDEM_FIXTURES) + "/" + rel);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  if (!r.is_ok()) return nullptr;
  return cache.emplace(rel, std::move(r).value()).first->second.get();
}

// The bytes of a file (empty, and a test failure, when it is missing).
inline std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing file " << path;
  std::vector<uint8_t> out(std::filesystem::exists(path) ? std::filesystem::file_size(path) : 0);
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size()));
  return out;
}

}  // namespace tandem::gguf::testing
