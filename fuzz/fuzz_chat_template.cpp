// libFuzzer target: arbitrary template text through the Jinja-subset parser
// and evaluator with a fixed conversation. Must never crash, hang or blow up
// memory (tight render limits); errors are fine.
#include <string>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_eval.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tandem::jinja;
  static const Value context = Value::from_json(Json::parse(R"({
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi \u00e9"},
                 {"role": "assistant", "content": "Hello", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}],
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"})"));
  std::string src(reinterpret_cast<const char*>(data), size);
  auto prog = parse_template(src);
  if (!prog.is_ok()) return 0;
  RenderLimits limits;
  limits.max_output = 1 << 16;
  limits.max_steps = 100000;
  limits.max_range = 1000;
  auto out = render(prog.value(), context, limits);
  (void)out;
  return 0;
}
