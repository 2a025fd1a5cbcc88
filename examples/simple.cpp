// The smallest complete use of the public API: load a model, decode a prompt,
// generate greedily, print the text. Built against include/ only (no internal
// header), which is what keeps the public API self-contained.
//
//   example_simple MODEL.gguf "Once upon a time" 40
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tandem/tandem.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.gguf [PROMPT] [N]\n", argv[0]);
    return 2;
  }
  const std::string prompt = argc > 2 ? argv[2] : "";
  const int n_predict = argc > 3 ? std::atoi(argv[3]) : 32;

  auto model = tandem::Model::load(argv[1]);
  if (!model) {
    std::fprintf(stderr, "error: %s\n", model.error().c_str());
    return 1;
  }
  const tandem::Model& m = **model;
  std::printf("%s: %s model, %d layers, vocabulary %d\n", m.name().c_str(), tandem::model_kind_name(m.kind()),
              m.n_layer(), m.n_vocab());

  std::vector<int32_t> tokens = m.tokenize(prompt);
  if (tokens.empty()) tokens.push_back(m.bos());
  tandem::ContextOptions opts;
  opts.n_ctx = static_cast<int>(tokens.size()) + n_predict;
  auto ctx = tandem::Context::create(m, opts);
  if (!ctx) {
    std::fprintf(stderr, "error: %s\n", ctx.error().c_str());
    return 1;
  }

  tandem::Batch batch;
  for (size_t i = 0; i < tokens.size(); ++i) batch.add(tokens[i], static_cast<int>(i), {0}, i + 1 == tokens.size());
  tandem::SamplerOptions greedy_opts;
  greedy_opts.temperature = 0.0f;  // greedy: argmax
  tandem::Sampler greedy(greedy_opts);
  tandem::TextStream text(m);
  for (int32_t t : tokens) std::fputs(text.push(t).c_str(), stdout);

  int pos = static_cast<int>(tokens.size());
  for (int i = 0; i < n_predict; ++i) {
    if (auto st = (*ctx)->decode(batch); !st) {
      std::fprintf(stderr, "\nerror: %s\n", st.message().c_str());
      return 1;
    }
    const int32_t next = greedy.sample((*ctx)->logits(0), (*ctx)->n_vocab());
    if (m.is_eog(next)) break;
    std::fputs(text.push(next).c_str(), stdout);
    std::fflush(stdout);
    batch.clear();
    batch.add(next, pos++, {0}, true);
  }
  std::printf("%s\n", text.flush().c_str());
  return 0;
}
