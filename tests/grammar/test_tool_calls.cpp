// Tool calls: parsing the model's `<tool_call>` syntax back (hand-written
// outputs), the forcing grammar accepting exactly well-formed calls of the
// offered tools, and validation errors naming the field.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "runtime/grammar/gbnf.h"
#include "runtime/grammar/matcher.h"
#include "runtime/tool_calls.h"

namespace {

using ojson = nlohmann::ordered_json;

const ojson kTools = ojson::parse(R"([
  {"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
     "properties":{"city":{"type":"string"},"unit":{"enum":["c","f"]}},"required":["city"]}}},
  {"type":"function","function":{"name":"ping"}}
])");

TEST(ToolCalls, ParsesTaggedCallsAndKeepsTheRest) {
  const std::vector<std::string> names = tandem::tool_names(kTools);
  ASSERT_EQ(names, (std::vector<std::string>{"get_weather", "ping"}));
  auto out = tandem::parse_tool_calls(
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>"
      "<tool_call>{\"name\":\"ping\",\"arguments\":\"{}\"}</tool_call>",
      names);
  ASSERT_EQ(out.calls.size(), 2u);
  EXPECT_EQ(out.calls[0].name, "get_weather");
  EXPECT_EQ(ojson::parse(out.calls[0].arguments), ojson::parse(R"({"city":"Oslo"})"));
  EXPECT_EQ(out.calls[1].name, "ping");
  EXPECT_EQ(out.calls[1].arguments, "{}");
  EXPECT_NE(out.calls[0].id, out.calls[1].id);
  EXPECT_EQ(out.content, "Let me check.");

  // Unknown tool or broken JSON: left as content, no call.
  auto bad = tandem::parse_tool_calls("<tool_call>{\"name\":\"rm\",\"arguments\":{}}</tool_call> <tool_call>{oops</tool_call>", names);
  EXPECT_TRUE(bad.calls.empty());
  EXPECT_NE(bad.content.find("rm"), std::string::npos);

  // Fallback: a bare {"name", "arguments"} object (ChatML-style models without tags).
  auto bare = tandem::parse_tool_calls("  {\"name\": \"ping\", \"parameters\": {}} ", names);
  ASSERT_EQ(bare.calls.size(), 1u);
  EXPECT_EQ(bare.calls[0].name, "ping");
  EXPECT_TRUE(bare.content.empty());
  EXPECT_TRUE(tandem::parse_tool_calls("just text", names).calls.empty());
}

TEST(ToolCalls, ForcingGrammarAcceptsExactlyWellFormedCalls) {
  auto text = tandem::tool_call_gbnf(kTools, "");
  ASSERT_TRUE(text.is_ok()) << text.status().message();
  auto g = tandem::grammar::parse_gbnf(*text, "tools");
  ASSERT_TRUE(g.is_ok()) << g.status().message() << "\n" << *text;
  using tandem::grammar::grammar_accepts;
  EXPECT_TRUE(grammar_accepts(*g, R"(<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}</tool_call>)"));
  EXPECT_TRUE(grammar_accepts(*g, "<tool_call>\n{\"name\":\"ping\",\"arguments\":{}}\n</tool_call>"));
  EXPECT_TRUE(grammar_accepts(*g, R"(<tool_call>{"name":"ping","arguments":{"any":[1]}}</tool_call>)"));
  EXPECT_FALSE(grammar_accepts(*g, R"(<tool_call>{"name":"get_weather","arguments":{"unit":"c"}}</tool_call>)"));  // city required
  EXPECT_FALSE(grammar_accepts(*g, R"(<tool_call>{"name":"rm","arguments":{}}</tool_call>)"));
  EXPECT_FALSE(grammar_accepts(*g, R"({"name":"ping","arguments":{}})"));  // tags required

  auto only = tandem::tool_call_gbnf(kTools, "ping");
  ASSERT_TRUE(only.is_ok());
  auto g2 = tandem::grammar::parse_gbnf(*only, "tools");
  ASSERT_TRUE(g2.is_ok());
  EXPECT_FALSE(grammar_accepts(*g2, R"(<tool_call>{"name":"get_weather","arguments":{"city":"x"}}</tool_call>)"));
  EXPECT_TRUE(grammar_accepts(*g2, R"(<tool_call>{"name":"ping","arguments":{}}</tool_call>)"));
  auto none = tandem::tool_call_gbnf(kTools, "nope");
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.status().message().find("'nope'"), std::string::npos);
}

TEST(ToolCalls, ValidationNamesTheField) {
  EXPECT_FALSE(tandem::validate_tools(kTools).has_value());
  auto e = tandem::validate_tools(ojson::parse(R"([{"type":"function","function":{"name":"ok"}},{"type":"function"}])"));
  ASSERT_TRUE(e.has_value());
  EXPECT_NE(e->find("tools[1].function"), std::string::npos);
  e = tandem::validate_tools(ojson::parse(R"([{"type":"retrieval"}])"));
  ASSERT_TRUE(e.has_value());
  EXPECT_NE(e->find("tools[0].type"), std::string::npos);
  e = tandem::validate_tools(ojson::parse(R"([{"type":"function","function":{"name":"a b"}}])"));
  ASSERT_TRUE(e.has_value());
  EXPECT_NE(e->find("tools[0].function.name"), std::string::npos);
}

}  // namespace
