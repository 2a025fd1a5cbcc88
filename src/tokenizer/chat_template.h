#pragma once
// Chat templates: the `tokenizer.chat_template` Jinja text of a GGUF file,
// rendered by our Jinja-subset interpreter (jinja_*.{h,cpp}) with the
// variables Hugging Face's apply_chat_template provides: messages,
// add_generation_prompt, bos_token, eos_token and (when given) tools.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace tandem {

class Tokenizer;
// JSON with object keys kept in insertion order (what tojson must reproduce).
using ChatJson = nlohmann::ordered_json;
namespace jinja {
struct Program;
}

struct ChatMessage {
  std::string role;     // "system", "user", "assistant", "tool"
  std::string content;
};

class ChatTemplate {
 public:
  // Syntax errors and unsupported statements (macro, call, ...) are reported
  // here, naming the construct and the template line.
  static Result<ChatTemplate> parse(const std::string& source);

  // messages: JSON array of message objects; tools: JSON array, or null for none
  // (then `tools` is left undefined, as transformers does).
  Result<std::string> apply(const ChatJson& messages, bool add_generation_prompt,
                            const ChatJson& tools, const std::string& bos_token,
                            const std::string& eos_token) const;
  // Any context (a JSON object whose members become template variables).
  Result<std::string> render(const ChatJson& context) const;

 private:
  std::shared_ptr<const jinja::Program> program_;
};

ChatJson to_json(const std::vector<ChatMessage>& messages);

// The format used when a model has no usable template:
//   "system: ...\nuser: ...\nassistant: ...\n" and, with add_generation_prompt,
//   a final "assistant:" line opener ("assistant: ").
std::string render_plain_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt);

struct ChatRender {
  std::string text;
  bool used_template = false;  // false: the plain fallback was used
  std::string warning;         // why the fallback was used ("" when the template rendered)
};

// Renders with the tokenizer's chat template; if it is absent, does not parse
// or fails to render, logs a warning and falls back to render_plain_chat.
// tools_json: a JSON array of tool definitions, or nullptr.
ChatRender render_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages,
                       bool add_generation_prompt, const std::string* tools_json = nullptr);
// Same with an explicit template source and BOS/EOS texts.
ChatRender render_chat(const std::string& template_source, const std::string& bos_token,
                       const std::string& eos_token, const std::vector<ChatMessage>& messages,
                       bool add_generation_prompt, const std::string* tools_json = nullptr);

}  // namespace tandem
