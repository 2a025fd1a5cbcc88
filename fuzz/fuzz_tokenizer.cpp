// libFuzzer target: arbitrary bytes through a byte-level BPE vocabulary and a
// SentencePiece vocabulary. Must never crash; every id must be in range; the
// byte-level BPE round trip must be exact; streaming equals decode.
// Vocabularies: $FUZZ_VOCAB (default ../shared/fixtures/vocab/ggml-vocab-dbrx.gguf)
// and $FUZZ_VOCAB_SPM (default ../shared/fixtures/vocab/ggml-vocab-llama-spm.gguf),
// relative to the project root where scripts/fuzz.sh runs.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

struct Vocab {
  std::unique_ptr<tandem::gguf::File> file;
  std::unique_ptr<tandem::Tokenizer> tok;
};

Vocab load(const char* env, const char* def) {
  const char* path = std::getenv(env);
  std::string p = path ? path : def;
  auto f = tandem::gguf::File::open(p);
  if (!f.is_ok()) {
    std::fprintf(stderr, "fuzz_tokenizer: cannot open %s (%s): %s\n", p.c_str(), env, f.status().to_string().c_str());
    std::abort();
  }
  Vocab v;
  v.file = std::move(f).value();
  auto t = tandem::Tokenizer::from_gguf(*v.file);
  if (!t.is_ok()) {
    std::fprintf(stderr, "fuzz_tokenizer: %s\n", t.status().to_string().c_str());
    std::abort();
  }
  v.tok = std::move(t).value();
  return v;
}

void check(const tandem::Tokenizer& tok, std::string_view text, bool add_special, bool parse_special, bool lossless) {
  std::vector<int32_t> ids = tok.encode(text, add_special, parse_special);
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.n_vocab()) std::abort();
  }
  std::string dec = tok.decode(ids, parse_special);
  if (lossless && !parse_special && dec != text) std::abort();
  tandem::StreamingDetokenizer st(tok, parse_special);
  std::string streamed;
  for (int32_t id : ids) streamed += st.push(id);
  streamed += st.flush();
  if (streamed != dec) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Vocab bpe = load("FUZZ_VOCAB", "../shared/fixtures/vocab/ggml-vocab-dbrx.gguf");
  static Vocab spm = load("FUZZ_VOCAB_SPM", "../shared/fixtures/vocab/ggml-vocab-llama-spm.gguf");
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  // The dbrx vocabulary is byte-level and has no user-defined tokens that
  // could swallow text, so without special parsing it must round-trip exactly.
  check(*bpe.tok, text, flags & 1, flags & 2, /*lossless=*/true);
  check(*spm.tok, text, flags & 1, flags & 2, /*lossless=*/false);
  return 0;
}
