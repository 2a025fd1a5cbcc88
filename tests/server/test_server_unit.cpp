// In-process tests of the server's pure pieces: stop-string matching across
// chunk boundaries, request validation, constant-time key comparison.
#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "runtime/server/api.h"
#include "runtime/server/text.h"

namespace tandem::server {
namespace {

// Feeds `chunks` through a matcher; returns everything it let out.
std::string run_stop(std::vector<std::string> stops, const std::vector<std::string>& chunks, bool* stopped) {
  StopMatcher m(std::move(stops));
  std::string out;
  for (const auto& c : chunks) {
    out += m.push(c);
    if (m.stopped()) break;
  }
  if (!m.stopped()) out += m.finish();
  *stopped = m.stopped();
  return out;
}

TEST(StopMatcher, SplitAcrossChunks) {
  bool stopped = false;
  EXPECT_EQ(run_stop({"END"}, {"hello E", "N", "D world"}, &stopped), "hello ");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(run_stop({"END"}, {"hello E", "N", "d world"}, &stopped), "hello ENd world");
  EXPECT_FALSE(stopped);
  // Two stop strings completed by the same chunk: the one starting first in the text wins.
  EXPECT_EQ(run_stop({"abcd", "bc"}, {"xa", "bcd"}, &stopped), "x");
  EXPECT_TRUE(stopped);
  // Generation stops at the chunk where any stop string completes (later text is never seen).
  EXPECT_EQ(run_stop({"abcd", "bc"}, {"xabc", "d"}, &stopped), "xa");
  EXPECT_TRUE(stopped);
  // A held-back prefix that never completes is released at the end.
  EXPECT_EQ(run_stop({"\n\n"}, {"one", "\n"}, &stopped), "one\n");
  EXPECT_FALSE(stopped);
  // Held text is released as soon as it can no longer start a stop string.
  StopMatcher m({"xyz"});
  EXPECT_EQ(m.push("ax"), "a");
  EXPECT_EQ(m.push("xy"), "x");
  EXPECT_EQ(m.push("q"), "xyq");
}

TEST(StopMatcher, NoStopsPassesEverything) {
  bool stopped = true;
  EXPECT_EQ(run_stop({}, {"a", "b"}, &stopped), "ab");
  EXPECT_FALSE(stopped);
}

TEST(SecureEqual, ComparesWholeStrings) {
  EXPECT_TRUE(secure_equal("key", "key"));
  EXPECT_FALSE(secure_equal("key", "kez"));
  EXPECT_FALSE(secure_equal("key", "key2"));
  EXPECT_FALSE(secure_equal("", "k"));
  EXPECT_TRUE(secure_equal("", ""));
}

const ApiError* err(const std::variant<CompletionRequest, ApiError>& v) { return std::get_if<ApiError>(&v); }

TEST(ParseRequest, DefaultsAndFields) {
  RequestLimits lim;
  lim.n_vocab = 512;
  lim.max_n = 4;
  auto v = parse_completion_request(
      R"({"prompt":"hi","max_tokens":7,"temperature":0.5,"top_k":3,"top_p":0.9,"min_p":0.1,"seed":-1,
          "n":2,"stop":"\n","logprobs":2,"stream":true,"logit_bias":{"5":-100,"6":2.5}})",
      false, lim);
  ASSERT_EQ(err(v), nullptr) << err(v)->message;
  const auto& r = std::get<CompletionRequest>(v);
  EXPECT_EQ(r.prompt, "hi");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_EQ(r.sampling.top_k, 3);
  EXPECT_TRUE(r.seed_given);
  EXPECT_EQ(r.sampling.seed, 0xffffffffu);
  EXPECT_EQ(r.n, 2);
  EXPECT_EQ(r.stop, std::vector<std::string>{"\n"});
  EXPECT_EQ(r.logprobs, 2);
  EXPECT_TRUE(r.stream);
  ASSERT_EQ(r.sampling.logit_bias.size(), 2u);
  EXPECT_TRUE(std::isinf(r.sampling.logit_bias[0].second));

  auto d = parse_completion_request(R"({"prompt":"x"})", false, lim);
  ASSERT_EQ(err(d), nullptr);
  const auto& dr = std::get<CompletionRequest>(d);
  EXPECT_EQ(dr.max_tokens, 16);  // OpenAI's completions default
  EXPECT_FLOAT_EQ(dr.sampling.temperature, 1.0f);
  EXPECT_EQ(dr.logprobs, -1);
  auto c = parse_completion_request(R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]})",
                                    true, lim);
  ASSERT_EQ(err(c), nullptr);
  EXPECT_EQ(std::get<CompletionRequest>(c).messages[0].content, "ab");
  EXPECT_EQ(std::get<CompletionRequest>(c).max_tokens, -1);
}

TEST(ParseRequest, RejectsWithFieldNames) {
  RequestLimits lim;
  lim.n_vocab = 512;
  struct Case {
    const char* body;
    bool chat;
    const char* code;
    const char* param;
  };
  const Case cases[] = {
      {"", false, "invalid_json", ""},
      {"null", false, "invalid_json", ""},
      {R"({"prompt":["a","b"]})", false, "unsupported_value", "prompt"},
      {R"({"prompt":[]})", false, "invalid_value", "prompt"},
      {R"({"prompt":[1.5]})", false, "invalid_type", "prompt[0]"},
      {R"({"prompt":"a","max_tokens":2.5})", false, "invalid_type", "max_tokens"},
      {R"({"prompt":"a","max_tokens":1e30})", false, "invalid_value", "max_tokens"},
      {R"({"prompt":"a","top_k":-1})", false, "invalid_value", "top_k"},
      {R"({"prompt":"a","min_p":2})", false, "invalid_value", "min_p"},
      {R"({"prompt":"a","logprobs":true})", false, "invalid_type", "logprobs"},
      {R"({"prompt":"a","logprobs":6})", false, "invalid_value", "logprobs"},
      {R"({"prompt":"a","stop":""})", false, "invalid_value", "stop"},
      {R"({"prompt":"a","logit_bias":{"x":1}})", false, "invalid_value", "logit_bias"},
      {R"({"prompt":"a","logit_bias":{"600":1}})", false, "invalid_value", "logit_bias"},
      {R"({"prompt":"a","stream_options":3})", false, "invalid_type", "stream_options"},
      {R"({"prompt":"a","model":7})", false, "invalid_type", "model"},
      {R"({"messages":"hi"})", true, "invalid_type", "messages"},
      {R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", true, "unsupported_value",
       "messages[0].content[0]"},
      {R"({"messages":[{"role":"user","content":"x"}],"logprobs":1})", true, "invalid_type", "logprobs"},
  };
  for (const auto& c : cases) {
    auto v = parse_completion_request(c.body, c.chat, lim);
    const ApiError* e = err(v);
    ASSERT_NE(e, nullptr) << c.body;
    EXPECT_EQ(e->status, 400) << c.body;
    EXPECT_EQ(e->type, "invalid_request_error");
    EXPECT_EQ(e->code, c.code) << c.body << ": " << e->message;
    EXPECT_EQ(e->param, c.param) << c.body;
    // The error body is the OpenAI shape.
    EXPECT_NE(e->to_json().find("\"error\":{"), std::string::npos);
  }
}

}  // namespace
}  // namespace tandem::server
