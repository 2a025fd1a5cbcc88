// Chat template front end: context construction and the plain fallback.
#include "tokenizer/chat_template.h"

#include <mutex>
#include <set>

#include "core/log.h"
#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_eval.h"
#include "tokenizer/tokenizer.h"

namespace tandem {

Result<ChatTemplate> ChatTemplate::parse(const std::string& source) {
  TANDEM_ASSIGN_OR_RETURN(jinja::Program p, jinja::parse_template(source));
  ChatTemplate t;
  t.program_ = std::make_shared<const jinja::Program>(std::move(p));
  return t;
}

Result<std::string> ChatTemplate::render(const ChatJson& context) const {
  if (!program_) return TANDEM_ERR(kInvalidArgument, "chat template not parsed");
  if (!context.is_object()) return TANDEM_ERR(kInvalidArgument, "chat template context must be a JSON object");
  return jinja::render(*program_, jinja::Value::from_json(context));
}

Result<std::string> ChatTemplate::apply(const ChatJson& messages, bool add_generation_prompt,
                                        const ChatJson& tools, const std::string& bos_token,
                                        const std::string& eos_token) const {
  ChatJson ctx = {{"messages", messages},
                        {"add_generation_prompt", add_generation_prompt},
                        {"bos_token", bos_token},
                        {"eos_token", eos_token}};
  if (!tools.is_null()) ctx["tools"] = tools;
  return render(ctx);
}

ChatJson to_json(const std::vector<ChatMessage>& messages) {
  ChatJson a = ChatJson::array();
  for (const ChatMessage& m : messages) a.push_back({{"role", m.role}, {"content", m.content}});
  return a;
}

std::string render_plain_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& m : messages) out += m.role + ": " + m.content + "\n";
  if (add_generation_prompt) out += "assistant: ";
  return out;
}

ChatRender render_chat(const std::string& source, const std::string& bos_token, const std::string& eos_token,
                       const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                       const std::string* tools_json) {
  ChatRender r;
  auto fallback = [&](std::string why) {
    r.warning = std::move(why);
    // Once per reason and process: a chat or a server renders every turn.
    static std::mutex mu;
    static std::set<std::string> said;
    std::lock_guard<std::mutex> lock(mu);
    if (said.insert(r.warning).second) TANDEM_LOG_WARN("chat template: {}; using the plain chat format", r.warning);
    r.text = render_plain_chat(messages, add_generation_prompt);
    r.used_template = false;
    return r;
  };
  if (source.empty()) return fallback("the model has no chat template (tokenizer.chat_template)");
  ChatJson tools = nullptr;
  if (tools_json != nullptr) {
    tools = ChatJson::parse(*tools_json, nullptr, /*allow_exceptions=*/false);
    if (tools.is_discarded()) return fallback("tools are not valid JSON");
  }
  Result<ChatTemplate> t = ChatTemplate::parse(source);
  if (!t.is_ok()) return fallback(t.status().message());
  Result<std::string> text = t.value().apply(to_json(messages), add_generation_prompt, tools, bos_token, eos_token);
  if (!text.is_ok()) return fallback(text.status().message());
  r.text = std::move(text).value();
  r.used_template = true;
  return r;
}

ChatRender render_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                       const std::string* tools_json) {
  auto text_of = [&](int32_t id) { return id >= 0 && id < tok.n_vocab() ? tok.token_text(id) : std::string(); };
  return render_chat(tok.chat_template(), text_of(tok.bos()), text_of(tok.eos()), messages, add_generation_prompt,
                     tools_json);
}

}  // namespace tandem
