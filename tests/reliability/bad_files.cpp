// Crafting the bad files of the bad-input tests (see bad_files.h).
#include "bad_files.h"

#include <unistd.h>

#include <fstream>
#include <iterator>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/writer.h"

namespace tandem::reltest {

namespace fs = std::filesystem;

namespace {

std::vector<char> slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void spit(const fs::path& p, const char* data, size_t n) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(data, static_cast<std::streamsize>(n));
}

// Rewrites `f` through the writer: `meta` may change metadata, `edit` one
// tensor's type/shape (keeping its byte count). Returns "" or the error.
template <typename Meta, typename Edit>
std::string rewrite(const gguf::File& f, const fs::path& out, Meta meta, Edit edit) {
  gguf::Writer w;
  w.copy_metadata(f);
  w.set_alignment(f.alignment());
  meta(w);
  for (const auto& t : f.tensors()) {
    DType type = t.type;
    std::vector<int64_t> shape = t.shape;
    edit(t.name, type, shape);
    w.add_tensor(t.name, type, shape, t.data, t.bytes);
  }
  Status st = w.write(out.string());
  return st.is_ok() ? "" : st.to_string();
}

}  // namespace

BadFiles make_bad_files(const fs::path& base, const fs::path& vocab_only) {
  BadFiles b;
  b.dir = fs::temp_directory_path() / ("tandem_rel_bad_" + std::to_string(::getpid()));
  fs::remove_all(b.dir);
  fs::create_directories(b.dir);
  b.missing = b.dir / "missing.gguf";
  b.a_dir = b.dir / "a_directory.gguf";
  fs::create_directories(b.a_dir);
  b.empty = b.dir / "empty.gguf";
  spit(b.empty, "", 0);
  b.vocab_only = vocab_only;

  const std::vector<char> bytes = slurp(base);
  if (bytes.size() < 4096) {
    b.error = "cannot read the base model " + base.string();
    return b;
  }
  auto f = gguf::File::open(base.string());
  if (!f.is_ok()) {
    b.error = f.status().to_string();
    return b;
  }
  const gguf::File& g = *f.value();
  // Cut inside the metadata (a third of the way to the tensor data).
  b.trunc_header = b.dir / "trunc_header.gguf";
  spit(b.trunc_header, bytes.data(), g.data_offset() / 3);
  // The last tensor's data runs past the end of the file.
  b.trunc_data = b.dir / "trunc_data.gguf";
  spit(b.trunc_data, bytes.data(), bytes.size() - 64);

  auto no_meta = [](gguf::Writer&) {};
  auto no_edit = [](const std::string&, DType&, std::vector<int64_t>&) {};

  // token_embd.weight [n_embd, n_vocab] stored as [n_vocab, n_embd]: same bytes.
  b.wrong_shape = b.dir / "wrong_shape.gguf";
  b.wrong_shape_tensor = "token_embd.weight";
  std::string e = rewrite(g, b.wrong_shape, no_meta, [&](const std::string& name, DType&, std::vector<int64_t>& shape) {
    if (name == b.wrong_shape_tensor && shape.size() == 2) std::swap(shape[0], shape[1]);
  });
  // The first 2-D F32/F16 weight of layer 0 stored as I32/I16 (same bytes per element).
  b.bad_type = b.dir / "bad_type.gguf";
  for (const auto& t : g.tensors())
    if (t.name.rfind("blk.0.", 0) == 0 && t.shape.size() == 2 && (t.type == DType::F32 || t.type == DType::F16)) {
      b.bad_type_tensor = t.name;
      break;
    }
  if (e.empty())
    e = rewrite(g, b.bad_type, no_meta, [&](const std::string& name, DType& type, std::vector<int64_t>&) {
      if (name == b.bad_type_tensor) type = type == DType::F32 ? DType::I32 : DType::I16;
    });
  b.unknown_arch = b.dir / "unknown_arch.gguf";
  if (e.empty())
    e = rewrite(g, b.unknown_arch, [](gguf::Writer& w) { w.set_string("general.architecture", "nosucharch"); }, no_edit);
  if (b.bad_type_tensor.empty()) e = "no 2-D F32/F16 tensor in layer 0 of " + base.string();
  b.error = e;
  return b;
}

std::string stray_temp_files(const fs::path& dir) {
  std::string found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.find(".tmp") != std::string::npos || name.back() == '~') found += it->path().string() + " ";
  }
  return found;
}

}  // namespace tandem::reltest
