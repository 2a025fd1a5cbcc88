// libFuzzer target: arbitrary bytes as a /v1/completions or
// /v1/chat/completions body through parse + validation. Must never crash,
// throw or hang; every rejection must be a 400 with a message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "runtime/server/api.h"
#include "runtime/server/text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the endpoint, the rest is the body.
  const bool chat = (data[0] & 1) != 0;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  tandem::server::RequestLimits lim;
  lim.n_vocab = 512;
  lim.max_n = 4;
  auto v = tandem::server::parse_completion_request(body, chat, lim);
  if (auto* e = std::get_if<tandem::server::ApiError>(&v)) {
    if (e->status != 400 || e->message.empty()) std::abort();
    (void)e->to_json();
    return 0;
  }
  // Accepted requests: the stop strings must survive the matcher on their own text.
  const auto& r = std::get<tandem::server::CompletionRequest>(v);
  if (r.n < 1 || r.n > lim.max_n) std::abort();
  tandem::server::StopMatcher m(r.stop);
  (void)m.push(r.chat ? tandem::server::render_chat_plain(r.messages) : r.prompt);
  (void)m.finish();
  return 0;
}
