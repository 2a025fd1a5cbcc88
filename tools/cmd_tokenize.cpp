// `tandem tokenize -m MODEL.gguf (-p TEXT | -f FILE) [--ids] [--no-bos] [--parse-special]`
// Tokenizes text with the model's own vocabulary (vocabulary-only GGUF files
// work too) and prints either the id list or one `id -> 'piece'` per line.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "command.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace cmd_tokenize {

int fail(const std::string& msg) {
  std::fprintf(stderr, "tandem tokenize: error: %s\n", msg.c_str());
  return 1;
}

int run_tokenize(int argc, char** argv) {
  CLI::App app{"Tokenize text with a model's vocabulary", "tandem tokenize"};
  std::string model, prompt, file;
  bool ids_only = false, no_bos = false, parse_special = false;
  app.add_option("-m,--model", model, "GGUF file (a vocabulary-only file is enough)")->required();
  auto* p = app.add_option("-p,--prompt", prompt, "text to tokenize");
  auto* f = app.add_option("-f,--file", file, "read the text from this file");
  p->excludes(f);
  f->excludes(p);
  app.add_flag("--ids", ids_only, "print only the ids, as [1, 2, 3]");
  app.add_flag("--no-bos", no_bos, "do not add BOS/EOS even if the vocabulary asks for them");
  app.add_flag("--parse-special", parse_special, "match control tokens written in the text");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::printf("%s", app.help().c_str());
    return 0;
  } catch (const CLI::ParseError& e) {
    return fail(e.what());
  }
  if (p->count() == 0 && f->count() == 0) return fail("give the text with -p TEXT or -f FILE");
  if (f->count() != 0) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return fail("cannot read '" + file + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    prompt = ss.str();
  }
  auto gf = tandem::gguf::File::open(model);
  if (!gf.is_ok()) return fail(gf.status().to_string());
  auto tok = tandem::Tokenizer::from_gguf(*gf.value());
  if (!tok.is_ok()) return fail(tok.status().to_string());
  std::vector<int32_t> ids = tok.value()->encode(prompt, !no_bos, parse_special);
  if (ids_only) {
    std::string s = "[";
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) s += ", ";
      s += std::to_string(ids[i]);
    }
    s += "]\n";
    std::fwrite(s.data(), 1, s.size(), stdout);
  } else {
    for (int32_t id : ids) {
      std::string line = fmt::format("{} -> '{}'\n", id, tok.value()->token_to_piece(id, true));
      std::fwrite(line.data(), 1, line.size(), stdout);
    }
  }
  return 0;
}

tandem::tools::CommandRegistration reg("tokenize", "tokenize text with a model's vocabulary", run_tokenize);

}  // namespace cmd_tokenize
