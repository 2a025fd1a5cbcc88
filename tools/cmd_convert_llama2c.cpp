// `tandem convert-llama2c CHECKPOINT TOKENIZER OUT.gguf`: llama2.c -> GGUF `llama`.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "command.h"
#include "model/tools/llama2c.h"

namespace cmd_convert_llama2c {

int run_convert_llama2c(int argc, char** argv) {
  CLI::App app{"Convert a llama2.c checkpoint (legacy or v1 f32) and its tokenizer.bin to GGUF"};
  app.name(argv[0]);
  std::string ckpt, tok, out;
  tandem::model::ConvertLlama2cOptions opts;
  app.add_option("checkpoint", ckpt, "llama2.c model .bin")->required();
  app.add_option("tokenizer", tok, "llama2.c tokenizer .bin (e.g. tok512.bin)")->required();
  app.add_option("out", out, "output .gguf")->required();
  app.add_option("--ctx", opts.context_length, "llama.context_length (default: the checkpoint's seq_len)");
  app.add_option("--name", opts.name, "general.name");
  CLI11_PARSE(app, argc, argv);
  tandem::Status st = tandem::model::convert_llama2c(ckpt, tok, out, opts);
  if (!st.is_ok()) {
    std::fprintf(stderr, "tandem convert-llama2c: error: %s\n", st.to_string().c_str());
    return 1;
  }
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

tandem::tools::CommandRegistration reg("convert-llama2c", "convert a llama2.c checkpoint to GGUF",
                                       run_convert_llama2c);

}  // namespace cmd_convert_llama2c
