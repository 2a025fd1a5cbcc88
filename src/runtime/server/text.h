#pragma once
// Text helpers of the server: stop strings matched across token boundaries,
// and the chat-message rendering used when the public API has none.
#include <string>
#include <string_view>
#include <vector>

#include "runtime/server/api.h"

namespace tandem::server {

// Holds back generated text that could still turn out to be the start of a
// stop string, so a stop split over several tokens is caught and never sent.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Adds newly generated text; returns the part that is now safe to send.
  // When a stop string appears, returns the text before it and stopped()
  // becomes true (the stop string and anything after it are dropped).
  std::string push(std::string_view text);
  // Generation ended for another reason: whatever is still held back.
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

// Renders chat messages with the model's template when the runtime offers one,
// else as plain "role: content" lines ending with "assistant:".
std::string render_chat_plain(const std::vector<ChatMessage>& messages);

// Constant-time comparison of two secrets (no early exit on the first difference).
bool secure_equal(std::string_view a, std::string_view b);

}  // namespace tandem::server
