#pragma once
// Helpers shared by the in-process runtime tests (one definition, so that the
// files can also share a unity-build translation unit).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tandem/tandem.h"

namespace tandem::rttest {

// Worker threads (TANDEM_TEST_THREADS overrides; 2 = the CI machine's cores).
inline int test_threads() {
  const char* e = std::getenv("TANDEM_TEST_THREADS");
  return e ? std::atoi(e) : 2;
}

using Tokens = std::vector<int32_t>;

// Prompts of the golden manifests (ids the reference tokenizer produced).
inline const Tokens kP0 = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};
inline const Tokens kP1 = {1,   291, 280, 294, 262, 294, 353, 265, 284, 294, 269,
                           278, 347, 355, 261, 413, 265, 370, 352, 266, 268, 388};
inline const Tokens kP2 = {1, 385, 328, 432, 261, 268, 414, 422, 263, 377, 267, 265, 282, 295, 433};
inline const Tokens kP3 = {1, 274, 287, 269, 301, 425, 411, 382, 276, 329, 356, 374, 419, 426, 342, 397};

// The path of a fixture model by name ("tiny-llama").
inline std::string model_path(const std::string& name) {
  return (std::filesystem::path(TANDEM_FIXTURES) / "models" / (name + ".gguf")).string();
}

// A fixture model by name; nullptr and a test failure if it does not load.
inline std::unique_ptr<tandem::Model> load(const std::string& name) {
  const std::string p = model_path(name);
  auto m = tandem::Model::load(p);
  EXPECT_TRUE(m.ok()) << p << ": " << m.error();
  return m.ok() ? std::move(m).value() : nullptr;
}

}  // namespace tandem::rttest
