#pragma once
// The prompt of a /v1/chat/completions request: the messages rendered with
// the MODEL's chat template (tandem::Model::format_chat, which falls back to
// plain "role: content" lines when the model has no usable template),
// tokenized with control tokens parsed, plus the message boundaries the
// prefix cache snapshots at.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/server/api.h"
#include "tandem/tandem.h"

namespace tandem::server {

struct ChatPrompt {
  std::string text;               // the rendered conversation, generation opener included
  std::vector<int32_t> tokens;    // its tokens (one BOS at most)
  // Token counts at message ends: for each k, the length of the common token
  // prefix of `tokens` and the rendering of messages [0, k) without the
  // generation opener. Ascending, unique, each in (0, tokens.size()).
  std::vector<int> boundaries;
};

// Tokenizes rendered chat text: parse_special (the template writes control
// tokens as text), the model's BOS added unless the text already starts with it.
std::vector<int32_t> tokenize_chat_text(const Model& model, const std::string& text);

// The tokens of the conversation rendered with the model's template.
std::vector<int32_t> chat_tokens(const Model& model, const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt);

// want_boundaries = false skips the per-message renderings (no prefix cache).
ChatPrompt build_chat_prompt(const Model& model, const std::vector<ChatMessage>& messages, bool want_boundaries);

}  // namespace tandem::server
