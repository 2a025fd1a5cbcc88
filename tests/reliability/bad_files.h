#pragma once
// Bad model / state files for the bad-input tests, crafted from a fixture:
// byte-level copies and cuts, and rewrites through the GGUF writer with one
// thing changed (a tensor's shape or type, the architecture name).
#include <filesystem>
#include <string>

namespace tandem::reltest {

struct BadFiles {
  std::filesystem::path dir;         // scratch folder holding everything below
  std::filesystem::path missing;     // does not exist
  std::filesystem::path a_dir;       // a directory
  std::filesystem::path empty;       // 0 bytes
  std::filesystem::path trunc_header;  // cut inside the metadata
  std::filesystem::path trunc_data;    // header intact, the last tensor's data cut short
  std::filesystem::path wrong_shape;   // token_embd.weight with its two dims swapped
  std::filesystem::path bad_type;      // one weight matrix stored as an integer type
  std::filesystem::path unknown_arch;  // general.architecture = "nosucharch"
  std::filesystem::path vocab_only;    // a tokenizer-only GGUF (fixture)
  std::string wrong_shape_tensor, bad_type_tensor;  // names of the changed tensors
  std::string error;                 // non-empty when crafting failed
};

// Crafts every file from `base` (a small valid model) into a fresh folder.
BadFiles make_bad_files(const std::filesystem::path& base, const std::filesystem::path& vocab_only);

// Files written by a test that are not expected: temporaries left behind
// ("*.tmp*", "*~", ...) anywhere under dir.
std::string stray_temp_files(const std::filesystem::path& dir);

}  // namespace tandem::reltest
