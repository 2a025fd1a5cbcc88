// `tandem serve` driven over HTTP (loopback, random port): completions, chat,
// streaming, n > 1, stop strings, logprobs, usage, tokenize, malformed
// requests, API key. Greedy outputs are checked against an in-process greedy
// reference computed with the public API (server_test_util.h).
#include <gtest/gtest.h>

#include <memory>

#include "runtime/server/text.h"
#include "server_process.h"
#include "server_test_util.h"

namespace tandem::test {
namespace {

constexpr const char* kPrompt = "Once upon a time, there was a little";

class ServerApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = Model::load(bundled_model());
    ASSERT_TRUE(m.ok()) << m.error();
    model_ = std::move(m).value().release();
    server_ = new ServerProcess({"-m", bundled_model(), "--parallel", "4", "--ctx", "256", "-t", "1"});
  }
  static void TearDownTestSuite() {
    delete server_;
    delete model_;
    server_ = nullptr;
    model_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(model_, nullptr);
    ASSERT_TRUE(server_->ok()) << server_->error();
  }
  static int port() { return server_->port(); }
  static inline Model* model_ = nullptr;
  static inline ServerProcess* server_ = nullptr;
};

TEST_F(ServerApi, HealthAndModels) {
  auto h = get_json(port(), "/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body["status"], "ok");
  auto m = get_json(port(), "/v1/models");
  ASSERT_EQ(m.status, 200) << m.raw;
  EXPECT_EQ(m.body["object"], "list");
  ASSERT_EQ(m.body["data"].size(), 1u);
  EXPECT_EQ(m.body["data"][0]["id"], "tiny-hybrid-stories");
}

TEST_F(ServerApi, GreedyCompletionMatchesReferenceWithUsage) {
  const auto prompt = model_->tokenize(kPrompt);
  const Reference ref = greedy_reference(*model_, prompt, 24);
  auto r = post_json(port(), "/v1/completions",
                     json{{"model", "tiny-hybrid-stories"}, {"prompt", kPrompt}, {"max_tokens", 24}, {"temperature", 0}});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["object"], "text_completion");
  ASSERT_EQ(r.body["choices"].size(), 1u);
  EXPECT_EQ(r.body["choices"][0]["text"], ref.text);
  EXPECT_EQ(r.body["choices"][0]["finish_reason"], ref.hit_eog ? "stop" : "length");
  EXPECT_EQ(r.body["usage"]["prompt_tokens"], prompt.size());
  EXPECT_EQ(r.body["usage"]["completion_tokens"], ref.tokens.size());
  EXPECT_EQ(r.body["usage"]["total_tokens"], prompt.size() + ref.tokens.size());
}

TEST_F(ServerApi, PromptAsTokenIds) {
  const auto prompt = model_->tokenize(kPrompt);
  const Reference ref = greedy_reference(*model_, prompt, 12);
  auto r = post_json(port(), "/v1/completions", json{{"prompt", prompt}, {"max_tokens", 12}, {"temperature", 0}});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["choices"][0]["text"], ref.text);
}

TEST_F(ServerApi, ChatUsesRenderedPrompt) {
  const std::vector<server::ChatMessage> msgs = {{"system", "You tell stories."}, {"user", "Tell me about a cat."}};
  // The model's chat template through the public API (this model has none:
  // format_chat's plain "role: content" lines with an "assistant: " opener).
  std::vector<ChatTurn> turns;
  for (const auto& x : msgs) turns.push_back({x.role, x.content});
  const auto prompt = model_->tokenize(model_->format_chat(turns, /*add_generation_prompt=*/true), true, true);
  ASSERT_NE(prompt, model_->tokenize(server::render_chat_plain(msgs), true, true));
  const Reference ref = greedy_reference(*model_, prompt, 20, /*strip_leading_space=*/true);
  json body = {{"messages", json::array({{{"role", "system"}, {"content", "You tell stories."}},
                                         {{"role", "user"}, {"content", "Tell me about a cat."}}})},
               {"max_tokens", 20},
               {"temperature", 0}};
  auto r = post_json(port(), "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["object"], "chat.completion");
  EXPECT_EQ(r.body["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r.body["choices"][0]["message"]["content"], ref.text);
  EXPECT_EQ(r.body["usage"]["prompt_tokens"], prompt.size());
  EXPECT_EQ(r.body["usage"]["completion_tokens"], ref.tokens.size());
}

TEST_F(ServerApi, StreamingEqualsNonStreaming) {
  const auto prompt = model_->tokenize(kPrompt);
  const Reference ref = greedy_reference(*model_, prompt, 30);
  auto s = post_sse(port(), "/v1/completions", json{{"prompt", kPrompt}, {"max_tokens", 30}, {"temperature", 0}, {"stream", true}});
  ASSERT_EQ(s.status, 200);
  ASSERT_GE(s.events.size(), 3u);
  EXPECT_EQ(s.events.back(), "[DONE]");
  std::string text, finish;
  json usage;
  for (size_t i = 0; i + 1 < s.events.size(); ++i) {
    json ev = json::parse(s.events[i]);
    if (ev.contains("usage")) usage = ev["usage"];
    for (const auto& c : ev["choices"]) {
      text += c["text"].get<std::string>();
      if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
    }
  }
  EXPECT_EQ(text, ref.text);
  EXPECT_EQ(finish, ref.hit_eog ? "stop" : "length");
  EXPECT_EQ(usage["prompt_tokens"], prompt.size());
  EXPECT_EQ(usage["completion_tokens"], ref.tokens.size());

  // Chat streaming: role first, then content deltas that add up to the reply.
  json body = {{"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})}, {"max_tokens", 10},
               {"temperature", 0}, {"stream", true}};
  auto c = post_sse(port(), "/v1/chat/completions", body);
  ASSERT_EQ(c.status, 200);
  ASSERT_GE(c.events.size(), 3u);
  EXPECT_EQ(c.events.back(), "[DONE]");
  json first = json::parse(c.events[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  auto nc = post_json(port(), "/v1/chat/completions", json{{"messages", body["messages"]}, {"max_tokens", 10}, {"temperature", 0}});
  std::string content;
  for (size_t i = 0; i + 1 < c.events.size(); ++i) {
    json ev = json::parse(c.events[i]);
    for (const auto& ch : ev["choices"])
      if (ch["delta"].contains("content")) content += ch["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(content, nc.body["choices"][0]["message"]["content"]);
}

TEST_F(ServerApi, SeveralChoicesForkThePrompt) {
  const auto prompt = model_->tokenize(kPrompt);
  const Reference ref = greedy_reference(*model_, prompt, 16);
  // Greedy: every fork must equal a fresh single-sequence run.
  auto g = post_json(port(), "/v1/completions", json{{"prompt", kPrompt}, {"max_tokens", 16}, {"temperature", 0}, {"n", 3}});
  ASSERT_EQ(g.status, 200) << g.raw;
  ASSERT_EQ(g.body["choices"].size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(g.body["choices"][i]["index"], i);
    EXPECT_EQ(g.body["choices"][i]["text"], ref.text) << "choice " << i;
  }
  EXPECT_EQ(g.body["usage"]["prompt_tokens"], prompt.size());
  EXPECT_EQ(g.body["usage"]["completion_tokens"], 3 * ref.tokens.size());
  // Sampled with a seed: reproducible, and the choices differ from each other.
  json sampled = {{"prompt", kPrompt}, {"max_tokens", 24}, {"temperature", 1.0}, {"n", 3}, {"seed", 7}};
  auto s1 = post_json(port(), "/v1/completions", sampled);
  auto s2 = post_json(port(), "/v1/completions", sampled);
  ASSERT_EQ(s1.status, 200) << s1.raw;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(s1.body["choices"][i]["text"], s2.body["choices"][i]["text"]);
  EXPECT_FALSE(s1.body["choices"][0]["text"] == s1.body["choices"][1]["text"] &&
               s1.body["choices"][1]["text"] == s1.body["choices"][2]["text"]);
}

TEST_F(ServerApi, StopStringAcrossTokenBoundary) {
  const auto prompt = model_->tokenize(kPrompt);
  const Reference ref = greedy_reference(*model_, prompt, 40);
  ASSERT_GE(ref.tokens.size(), 6u);
  // A stop string that starts inside token 3's piece and ends inside token 4's.
  std::string pieces;
  for (int i = 0; i < 3; ++i) pieces += model_->token_to_piece(ref.tokens[i]);
  const std::string p3 = model_->token_to_piece(ref.tokens[3]);
  const std::string p4 = model_->token_to_piece(ref.tokens[4]);
  ASSERT_GE(p3.size(), 2u);
  ASSERT_GE(p4.size(), 2u);
  const std::string stop = p3.substr(p3.size() - 1) + p4.substr(0, 1);
  const size_t cut = ref.text.find(stop);
  ASSERT_NE(cut, std::string::npos);
  for (bool stream : {false, true}) {
    json body = {{"prompt", kPrompt}, {"max_tokens", 40}, {"temperature", 0}, {"stop", json::array({"zzzq", stop})}};
    std::string text, finish;
    if (!stream) {
      auto r = post_json(port(), "/v1/completions", body);
      ASSERT_EQ(r.status, 200) << r.raw;
      text = r.body["choices"][0]["text"];
      finish = r.body["choices"][0]["finish_reason"];
    } else {
      body["stream"] = true;
      auto s = post_sse(port(), "/v1/completions", body);
      for (size_t i = 0; i + 1 < s.events.size(); ++i) {
        const json ev = json::parse(s.events[i]);
        for (const auto& c : ev["choices"]) {
          text += c["text"].get<std::string>();
          if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
        }
      }
    }
    EXPECT_EQ(text, ref.text.substr(0, cut)) << "stream=" << stream << " stop='" << stop << "'";
    EXPECT_EQ(finish, "stop");
  }
}

TEST_F(ServerApi, LogprobsAreTheModelDistribution) {
  const auto prompt = model_->tokenize(kPrompt);
  const Reference ref = greedy_reference(*model_, prompt, 8);
  auto r = post_json(port(), "/v1/completions", json{{"prompt", kPrompt}, {"max_tokens", 8}, {"temperature", 0}, {"logprobs", 3}});
  ASSERT_EQ(r.status, 200) << r.raw;
  const json& lp = r.body["choices"][0]["logprobs"];
  ASSERT_EQ(lp["token_logprobs"].size(), ref.tokens.size());
  for (size_t i = 0; i < ref.tokens.size(); ++i) {
    EXPECT_NEAR(lp["token_logprobs"][i].get<double>(), ref.logprobs[i], 1e-3) << "token " << i;
    EXPECT_EQ(lp["tokens"][i], model_->token_to_piece(ref.tokens[i]));
    EXPECT_EQ(lp["top_logprobs"][i].size(), 3u);
  }
  // Chat form: content[i].top_logprobs[0] is the greedy token itself.
  auto c = post_json(port(), "/v1/chat/completions",
                     json{{"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})}, {"max_tokens", 4},
                          {"temperature", 0}, {"logprobs", true}, {"top_logprobs", 2}});
  ASSERT_EQ(c.status, 200) << c.raw;
  for (const auto& t : c.body["choices"][0]["logprobs"]["content"]) {
    ASSERT_EQ(t["top_logprobs"].size(), 2u);
    EXPECT_EQ(t["top_logprobs"][0]["token"], t["token"]);
    EXPECT_NEAR(t["top_logprobs"][0]["logprob"].get<double>(), t["logprob"].get<double>(), 1e-6);
  }
}

TEST_F(ServerApi, TokenizeDetokenizeRoundTrip) {
  auto t = post_json(port(), "/tokenize", json{{"content", kPrompt}});
  ASSERT_EQ(t.status, 200) << t.raw;
  EXPECT_EQ(t.body["tokens"].get<std::vector<int32_t>>(), model_->tokenize(kPrompt));
  auto d = post_json(port(), "/detokenize", json{{"tokens", t.body["tokens"]}});
  ASSERT_EQ(d.status, 200) << d.raw;
  EXPECT_EQ(d.body["content"], kPrompt);
}

struct BadCase {
  const char* path;
  std::string body;
  int status;
  const char* code;
};

TEST_F(ServerApi, MalformedRequestsGetOpenAiErrors) {
  const std::string long_prompt = [] {
    std::string s;
    for (int i = 0; i < 200; ++i) s += "the cat sat on the mat. ";
    return s;
  }();
  const std::vector<BadCase> cases = {
      {"/v1/completions", "{not json", 400, "invalid_json"},
      {"/v1/completions", "[1,2]", 400, "invalid_json"},
      {"/v1/completions", R"({"max_tokens": 4})", 400, "missing_field"},
      {"/v1/completions", R"({"prompt": 5})", 400, "invalid_type"},
      {"/v1/completions", R"({"prompt": "a", "max_tokens": "4"})", 400, "invalid_type"},
      {"/v1/completions", R"({"prompt": "a", "max_tokens": 0})", 400, "invalid_value"},
      {"/v1/completions", R"({"prompt": "a", "temperature": 3})", 400, "invalid_value"},
      {"/v1/completions", R"({"prompt": "a", "top_p": -0.5})", 400, "invalid_value"},
      {"/v1/completions", R"({"prompt": "a", "n": 9})", 400, "invalid_value"},
      {"/v1/completions", R"({"prompt": "a", "stop": [1]})", 400, "invalid_type"},
      {"/v1/completions", R"({"prompt": "a", "stream": "yes"})", 400, "invalid_type"},
      {"/v1/completions", R"({"prompt": [1, 99999]})", 400, "invalid_value"},
      {"/v1/completions", R"({"prompt": "a", "model": "gpt-4"})", 404, "model_not_found"},
      {"/v1/completions", json{{"prompt", long_prompt}}.dump(), 400, "context_length_exceeded"},
      {"/v1/chat/completions", R"({"prompt": "a"})", 400, "missing_field"},
      {"/v1/chat/completions", R"({"messages": []})", 400, "invalid_value"},
      {"/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "x"}]})", 400, "invalid_value"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user"}]})", 400, "missing_field"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", 400,
       "invalid_value"},
      {"/tokenize", R"({"text": "a"})", 400, "missing_field"},
      {"/detokenize", R"({"tokens": [-1]})", 400, "invalid_value"},
      {"/v1/nothing", "{}", 404, "not_found"},
  };
  for (const auto& c : cases) {
    auto r = post_json(port(), c.path, c.body);
    EXPECT_EQ(r.status, c.status) << c.path << " " << c.body << " -> " << r.raw;
    ASSERT_TRUE(r.body.is_object()) << r.raw;
    ASSERT_TRUE(r.body.contains("error")) << r.raw;
    EXPECT_EQ(r.body["error"]["code"], c.code) << c.body;
    EXPECT_TRUE(r.body["error"]["message"].is_string());
    EXPECT_TRUE(r.body["error"]["type"].is_string());
  }
  // The server is still healthy after all of them.
  EXPECT_EQ(get_json(port(), "/health").status, 200);
  EXPECT_TRUE(server_->alive());
}

TEST(ServerLimits, OversizeBodyAndApiKey) {
  ServerProcess srv({"-m", bundled_model(), "--ctx", "128", "-t", "1", "--max-body", "2000", "--api-key", "s3cret-key"});
  ASSERT_TRUE(srv.ok()) << srv.error();
  const json ok_body = {{"prompt", "Once"}, {"max_tokens", 2}};
  // No key / wrong key / not Bearer: 401 everywhere but /health.
  EXPECT_EQ(get_json(srv.port(), "/health").status, 200);
  for (const char* path : {"/v1/models", "/metrics"}) {
    auto r = get_json(srv.port(), path);
    EXPECT_EQ(r.status, 401) << path;
    EXPECT_EQ(r.body["error"]["type"], "authentication_error");
    EXPECT_EQ(get_json(srv.port(), path, "s3cret-kez").status, 401) << path;
    EXPECT_EQ(get_json(srv.port(), path, "s3cret-key").status, 200) << path;
  }
  EXPECT_EQ(post_json(srv.port(), "/v1/completions", ok_body).status, 401);
  EXPECT_EQ(post_json(srv.port(), "/v1/completions", ok_body, "s3cret-key-longer").status, 401);
  auto good = post_json(srv.port(), "/v1/completions", ok_body, "s3cret-key");
  EXPECT_EQ(good.status, 200) << good.raw;
  // The key never appears in a response.
  EXPECT_EQ(good.raw.find("s3cret"), std::string::npos);
  // A body over --max-body: 413 with an OpenAI-style error.
  const std::string big = json{{"prompt", std::string(5000, 'a')}}.dump();
  auto r = post_json(srv.port(), "/v1/completions", big, "s3cret-key");
  EXPECT_EQ(r.status, 413);
  ASSERT_TRUE(r.body.is_object()) << r.raw;
  EXPECT_EQ(r.body["error"]["code"], "request_too_large");
}

// The same greedy request against models of every memory kind: attention only
// (KV cells), Mamba2 only (state slots), real trained llama weights.
class ServerModels : public ::testing::TestWithParam<const char*> {};

TEST_P(ServerModels, GreedyAndForkMatchReference) {
  const std::string path = fixture_model(GetParam());
  auto m = Model::load(path);
  ASSERT_TRUE(m.ok()) << m.error();
  ServerProcess srv({"-m", path, "--ctx", "128", "--parallel", "3", "-t", "1"});
  ASSERT_TRUE(srv.ok()) << srv.error();
  const auto prompt = (*m)->tokenize("One day, Tom");
  const Reference ref = greedy_reference(**m, prompt, 20);
  auto r = post_json(srv.port(), "/v1/completions", json{{"prompt", "One day, Tom"}, {"max_tokens", 20}, {"temperature", 0}, {"n", 2}});
  ASSERT_EQ(r.status, 200) << r.raw;
  // Random-weight models emit byte tokens that are not UTF-8; JSON carries
  // them as U+FFFD, so compare with the reference after the same replacement.
  const json expected = json::parse(json(ref.text).dump(-1, ' ', false, json::error_handler_t::replace));
  for (int i = 0; i < 2; ++i) EXPECT_EQ(r.body["choices"][i]["text"], expected) << GetParam() << " choice " << i;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ServerModels,
                         ::testing::Values("stories260K.gguf", "tiny-llama.gguf", "tiny-mamba2.gguf"));

}  // namespace
}  // namespace tandem::test
