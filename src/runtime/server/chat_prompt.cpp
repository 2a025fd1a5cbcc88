// Chat prompts from the model's template (see chat_prompt.h).
#include "runtime/server/chat_prompt.h"

#include <algorithm>

#include "tokenizer/chat_template.h"

namespace tandem::server {

std::vector<int32_t> tokenize_chat_text(const Model& model, const std::string& text) {
  std::vector<int32_t> toks = model.tokenize(text, /*add_special=*/true, /*parse_special=*/true);
  // A template that writes the BOS text itself ("{{ bos_token }}...") plus the
  // tokenizer's own BOS would give two: keep one.
  const int32_t bos = model.bos();
  if (bos >= 0 && toks.size() >= 2 && toks[0] == bos && toks[1] == bos) toks.erase(toks.begin());
  return toks;
}

namespace {
// Messages [0, n) with the model's template. A model without a template gets
// the plain format format_chat falls back to, rendered directly: format_chat
// would log its fallback warning for every rendering of every request.
std::string render(const Model& model, const std::vector<ChatMessage>& messages, size_t n, bool gen) {
  if (model.chat_template().empty()) {
    std::vector<tandem::ChatMessage> m;
    for (size_t i = 0; i < n; ++i) m.push_back({messages[i].role, messages[i].content});
    return render_plain_chat(m, gen);
  }
  std::vector<ChatTurn> t;
  t.reserve(n);
  for (size_t i = 0; i < n; ++i) t.push_back({messages[i].role, messages[i].content});
  return model.format_chat(t, gen);
}
}  // namespace

std::vector<int32_t> chat_tokens(const Model& model, const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt) {
  return tokenize_chat_text(model, render(model, messages, messages.size(), add_generation_prompt));
}

ChatPrompt build_chat_prompt(const Model& model, const std::vector<ChatMessage>& messages, bool want_boundaries) {
  ChatPrompt p;
  p.text = render(model, messages, messages.size(), /*gen=*/true);
  p.tokens = tokenize_chat_text(model, p.text);
  if (!want_boundaries) return p;
  for (size_t k = 1; k <= messages.size(); ++k) {
    const std::vector<int32_t> part = tokenize_chat_text(model, render(model, messages, k, /*gen=*/false));
    // Templates may render the last message differently when it is last (or a
    // token may merge across the boundary): the common prefix is what a later
    // request with the same first k messages can share.
    const auto mm = std::mismatch(part.begin(), part.end(), p.tokens.begin(), p.tokens.end());
    const int len = static_cast<int>(mm.first - part.begin());
    if (len > 0 && len < static_cast<int>(p.tokens.size()) && (p.boundaries.empty() || len > p.boundaries.back()))
      p.boundaries.push_back(len);
  }
  return p;
}

}  // namespace tandem::server
