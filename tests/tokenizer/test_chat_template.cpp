// Chat templates: real published templates rendered against the formats their
// model cards document, plus the Jinja features they rely on, one by one.
#include <gtest/gtest.h>

#include "chat_templates.h"
#include "tokenizer/chat_template.h"
#include "vocab_fixture.h"

namespace tandem::testing {
namespace {

using json = nlohmann::ordered_json;

std::string render(const std::string& tmpl, const json& ctx) {
  auto t = ChatTemplate::parse(tmpl);
  EXPECT_TRUE(t.is_ok()) << t.status().to_string();
  if (!t.is_ok()) return "<parse error>";
  auto r = t.value().render(ctx);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? r.value() : "<render error>";
}

Status render_error(const std::string& tmpl, const json& ctx = json::object()) {
  auto t = ChatTemplate::parse(tmpl);
  if (!t.is_ok()) return t.status();
  auto r = t.value().render(ctx);
  return r.is_ok() ? Status::ok() : r.status();
}

const std::vector<ChatMessage> kConversation = {
    {"system", "You are helpful."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"}};

// ---- Granite 4.0 (documented: <|start_of_role|>ROLE<|end_of_role|>TEXT<|end_of_text|>\n) ----

TEST(ChatTemplateGranite, BasicConversation) {
  ChatRender r = render_chat(kGranite4Template, "", "<|end_of_text|>", kConversation, true);
  ASSERT_TRUE(r.used_template) << r.warning;
  EXPECT_EQ(r.text,
            "<|start_of_role|>system<|end_of_role|>You are helpful.<|end_of_text|>\n"
            "<|start_of_role|>user<|end_of_role|>Hi<|end_of_text|>\n"
            "<|start_of_role|>assistant<|end_of_role|>Hello!<|end_of_text|>\n"
            "<|start_of_role|>user<|end_of_role|>Bye<|end_of_text|>\n"
            "<|start_of_role|>assistant<|end_of_role|>");
  // No default system prompt; no generation prompt unless asked.
  ChatRender r2 = render_chat(kGranite4Template, "", "", {{"user", "Answer with OK."}}, false);
  EXPECT_EQ(r2.text, "<|start_of_role|>user<|end_of_role|>Answer with OK.<|end_of_text|>\n");
}

TEST(ChatTemplateGranite, ToolsCallsAndResponses) {
  const std::string tools = R"([{"type": "function", "function": {"name": "get_weather", "parameters": {"city": "string"}}}])";
  ChatRender r = render_chat(kGranite4Template, "", "", {{"user", "Weather in Boston?"}}, true, &tools);
  ASSERT_TRUE(r.used_template) << r.warning;
  const std::string prefix =
      "<|start_of_role|>system<|end_of_role|>You are a helpful assistant with access to the following tools. "
      "You may call one or more tools to assist with the user query.\n\nYou are provided with function "
      "signatures within <tools></tools> XML tags:\n<tools>\n"
      R"({"type": "function", "function": {"name": "get_weather", "parameters": {"city": "string"}}})"
      "\n</tools>\n\nFor each tool call, return a json object with function name and arguments within "
      "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
      "<args-json-object>}\n</tool_call>.";
  EXPECT_EQ(r.text.substr(0, prefix.size()), prefix);
  // The escaped example inside the suffix: \\\" in the template is a backslash and a quote.
  EXPECT_NE(r.text.find("\"arguments\": \"{\n  \\\"city\\\": \\\"Boston\\\"\n}\"}"), std::string::npos);
  const std::string tail = "</tool_call><|end_of_text|>\n<|start_of_role|>user<|end_of_role|>Weather in Boston?"
                           "<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>";
  ASSERT_GE(r.text.size(), tail.size());
  EXPECT_EQ(r.text.substr(r.text.size() - tail.size()), tail);

  auto t = ChatTemplate::parse(kGranite4Template);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  json msgs = json::parse(R"([
    {"role": "user", "content": "Weather?"},
    {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Boston"}}}]},
    {"role": "tool", "content": "{\"temp\": 20}"},
    {"role": "tool", "content": "sunny"}
  ])");
  auto out = t.value().apply(msgs, false, nullptr, "", "");
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(out.value(),
            "<|start_of_role|>user<|end_of_role|>Weather?<|end_of_text|>\n"
            "<|start_of_role|>assistant<|end_of_role|><tool_call>\n"
            "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Boston\"}}\n</tool_call><|end_of_text|>\n"
            "<|start_of_role|>user<|end_of_role|>\n<tool_response>\n{\"temp\": 20}\n</tool_response>"
            "\n<tool_response>\nsunny\n</tool_response><|end_of_text|>\n");
}

// ---- ChatML (the dbrx vocabulary's own template) ----

TEST(ChatTemplateChatML, DbrxVocabTemplate) {
  LoadedVocab v = load_vocab(fixture("vocab/ggml-vocab-dbrx.gguf"));
  ASSERT_TRUE(v.tok);
  ASSERT_FALSE(v.tok->chat_template().empty());
  ChatRender r = render_chat(*v.tok, kConversation, true);
  ASSERT_TRUE(r.used_template) << r.warning;
  EXPECT_EQ(r.text,
            "<|im_start|>system\nYou are helpful.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n"
            "<|im_start|>user\nBye<|im_end|>\n"
            "<|im_start|>assistant\n");
  // Without a system message the template supplies DBRX's default one.
  ChatRender d = render_chat(*v.tok, {{"user", "Hi"}}, false);
  EXPECT_EQ(d.text.rfind("<|im_start|>system\nYou are DBRX, created by Databricks.", 0), 0u) << d.text;
  const std::string end = "USER'S QUERY.<|im_end|>\n<|im_start|>user\nHi<|im_end|>";
  ASSERT_GE(d.text.size(), end.size());
  EXPECT_EQ(d.text.substr(d.text.size() - end.size()), end);
  // The rendered prompt tokenizes with the control tokens when parse_special is on.
  auto ids = v.tok->encode(r.text, false, true);
  EXPECT_EQ(ids.front(), v.tok->find_token("<|im_start|>"));
}

// ---- Llama 3 ----

TEST(ChatTemplateLlama3, Llama3AndLlama31) {
  ChatRender r = render_chat(kLlama3Template, "<|begin_of_text|>", "<|eot_id|>",
                             {{"system", "Sys"}, {"user", " Hi \n"}}, true);
  ASSERT_TRUE(r.used_template) << r.warning;
  EXPECT_EQ(r.text,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSys<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  ChatRender r31 = render_chat(kLlama31Template, "<|begin_of_text|>", "<|eot_id|>",
                               {{"system", "Sys"}, {"user", "Hi"}}, true);
  ASSERT_TRUE(r31.used_template) << r31.warning;
  EXPECT_EQ(r31.text,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nSys<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // Tools go into the first user message, pretty-printed with indent=4.
  const std::string tools = R"([{"name": "f", "args": [1, 2]}])";
  ChatRender rt = render_chat(kLlama31Template, "", "", {{"user", "Q"}}, false, &tools);
  ASSERT_TRUE(rt.used_template) << rt.warning;
  EXPECT_NE(rt.text.find("Environment: ipython\n"), std::string::npos);
  EXPECT_NE(rt.text.find("{\n    \"name\": \"f\",\n    \"args\": [\n        1,\n        2\n    ]\n}\n\nQ<|eot_id|>"),
            std::string::npos)
      << rt.text;
}

TEST(ChatTemplatePhi3, VocabTemplate) {
  LoadedVocab v = load_vocab(fixture("vocab/ggml-vocab-phi-3.gguf"));
  ASSERT_TRUE(v.tok);
  ChatRender r = render_chat(*v.tok, {{"user", "Hi"}, {"assistant", "Yo"}}, true);
  ASSERT_TRUE(r.used_template) << r.warning;
  EXPECT_EQ(r.text, "<s><|user|>\nHi<|end|>\n<|assistant|>\nYo<|end|>\n");
}

// ---- fallback ----

TEST(ChatTemplateFallback, PlainFormatWithWarning) {
  const std::vector<ChatMessage> m = {{"user", "Hi"}};
  ChatRender none = render_chat("", "", "", m, true);
  EXPECT_FALSE(none.used_template);
  EXPECT_FALSE(none.warning.empty());
  EXPECT_EQ(none.text, "user: Hi\nassistant: ");
  ChatRender bad = render_chat("{% macro m() %}x{% endmacro %}{{ m() }}", "", "", m, false);
  EXPECT_FALSE(bad.used_template);
  EXPECT_NE(bad.warning.find("macro"), std::string::npos) << bad.warning;
  EXPECT_EQ(bad.text, "user: Hi\n");
  ChatRender raised = render_chat("{{ raise_exception('only user turns') }}", "", "", m, false);
  EXPECT_FALSE(raised.used_template);
  EXPECT_NE(raised.warning.find("only user turns"), std::string::npos);
}

// ---- interpreter features ----

TEST(Jinja, LoopVariables) {
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}"
                   "{{ loop.length }}{{ loop.revindex }}|{% endfor %}",
                   {{"xs", {"a", "b"}}}),
            "10TrueFalse22|21FalseTrue21|");
  EXPECT_EQ(render("{% for x in xs if x > 1 %}{{ x }}{{ loop.length }}{% else %}none{% endfor %}", {{"xs", {1, 2, 3}}}),
            "2232");
  EXPECT_EQ(render("{% for x in xs %}{{ x }}{% else %}none{% endfor %}", {{"xs", json::array()}}), "none");
  EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {{"d", {{"a", 1}, {"b", 2}}}}), "a=1;b=2;");
  EXPECT_EQ(render("{% for x in range(5) %}{% if x == 3 %}{% break %}{% endif %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}", json::object()),
            "02");
}

TEST(Jinja, IfElifElseAndScoping) {
  const char* t = "{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %}";
  EXPECT_EQ(render(t, {{"x", 1}}), "one");
  EXPECT_EQ(render(t, {{"x", 2}}), "two");
  EXPECT_EQ(render(t, {{"x", 7}}), "many");
  // set inside a loop does not leak; a namespace does
  EXPECT_EQ(render("{% set a = 0 %}{% set ns = namespace(b=0) %}{% for i in [1,2,3] %}{% set a = a + i %}"
                   "{% set ns.b = ns.b + i %}{% endfor %}{{ a }} {{ ns.b }}",
                   json::object()),
            "0 6");
  EXPECT_EQ(render("{% set s %}x{{ 1 + 1 }}{% endset %}[{{ s }}]", json::object()), "[x2]");
}

TEST(Jinja, FiltersAndOperators) {
  EXPECT_EQ(render("{{ '  a b  ' | trim }}|{{ 'aBc' | upper }}|{{ 'aBc' | lower }}|{{ [1,2,3] | length }}|{{ 'héllo' | length }}",
                   json::object()),
            "a b|ABC|abc|3|5");
  EXPECT_EQ(render("{{ x | tojson }}", {{"x", {{"k", "v\n\"q\""}, {"n", {1, 2.5, true, nullptr}}}}}),
            "{\"k\": \"v\\n\\\"q\\\"\", \"n\": [1, 2.5, true, null]}");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }}|{{ 'a' + 'b' }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ 7 / 2 }}|{{ 2 ** 3 }}|{{ 'ab' * 2 }}",
                   json::object()),
            "a1None|ab|3|-4|1|3.5|8|abab");
  EXPECT_EQ(render("{{ 'x' if a else 'y' }}{{ 'z' if not a }}", {{"a", false}}), "yz");
  EXPECT_EQ(render("{{ 'b' in 'abc' }}{{ 2 in [1,2] }}{{ 'k' in d }}{{ 'q' not in d }}", {{"d", {{"k", 1}}}}), "TrueTrueTrueTrue");
  EXPECT_EQ(render("{{ [3,1,2] | sort | join(',') }}|{{ xs | map(attribute='n') | join }}|{{ xs | selectattr('n', 'equalto', 2) | list | length }}",
                   {{"xs", {{{"n", 1}}, {{"n", 2}}}}}),
            "1,2,3|12|1");
  EXPECT_EQ(render("{{ undefined_var | default('dflt') }}|{{ '' | default('e', true) }}", json::object()), "dflt|e");
  EXPECT_EQ(render("{{ [1, 'a', none, true] }}|{{ {'a': 1} }}|{{ 1.0 }}", json::object()), "[1, 'a', None, True]|{'a': 1}|1.0");
}

TEST(Jinja, MethodsSubscriptsSlices) {
  EXPECT_EQ(render("{{ '  x '.strip() }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith('bc') }}|{{ 'a,b,,c'.split(',') }}|"
                   "{{ ' a  b '.split() }}|{{ 'aXbX'.replace('X', '-') }}|{{ d.get('k') }}|{{ d.get('z', 5) }}|{{ d.get('z') }}",
                   {{"d", {{"k", "v"}}}}),
            "x|True|True|['a', 'b', '', 'c']|['a', 'b']|a-b-|v|5|None");
  EXPECT_EQ(render("{{ xs[0] }}{{ xs[-1] }}{{ xs[1:] }}{{ xs[:-1] }}{{ xs[::-1] }}{{ 'héllo'[1:3] }}{{ xs[9] is defined }}",
                   {{"xs", {1, 2, 3}}}),
            "13[2, 3][1, 2][3, 2, 1]élFalse");
  EXPECT_EQ(render("{{ m.role }}{{ m['content'] }}{{ m.missing is defined }}{{ m.missing is undefined }}",
                   {{"m", {{"role", "user"}, {"content", "hi"}}}}),
            "userhiFalseTrue");
}

TEST(Jinja, Tests) {
  EXPECT_EQ(render("{{ x is none }}{{ x is not none }}{{ s is string }}{{ n is string }}{{ n is number }}{{ l is iterable }}"
                   "{{ d is mapping }}{{ u is defined }}{{ 4 is even }}{{ 9 is divisibleby 3 }}",
                   {{"x", nullptr}, {"s", "a"}, {"n", 1}, {"l", {1}}, {"d", json::object()}}),
            "TrueFalseTrueFalseTrueTrueTrueFalseTrueTrue");
}

TEST(Jinja, WhitespaceControl) {
  // {%- and -%} strip; trim_blocks drops the newline after a block tag; lstrip_blocks
  // drops the indentation before one.
  EXPECT_EQ(render("a  {%- if true -%}  b  {%- endif -%}  c", json::object()), "abc");
  EXPECT_EQ(render("{% if true %}\n  x\n{% endif %}\ny", json::object()), "  x\ny");
  EXPECT_EQ(render("  {% if true %}x{% endif %}\n    {{ 'v' }}", json::object()), "x    v");
  EXPECT_EQ(render("a{# comment #}b {{- ' c' }}", json::object()), "ab c");
}

TEST(Jinja, ErrorsNameTheConstruct) {
  auto has = [](const Status& st, const std::string& what) {
    return !st.is_ok() && st.message().find(what) != std::string::npos;
  };
  EXPECT_TRUE(has(render_error("{% macro m() %}{% endmacro %}"), "macro"));
  EXPECT_TRUE(has(render_error("{% call foo() %}{% endcall %}"), "call"));
  EXPECT_TRUE(has(render_error("{{ x | frobnicate }}"), "frobnicate"));
  EXPECT_TRUE(has(render_error("{{ x is frobnicated }}"), "frobnicated"));
  EXPECT_TRUE(has(render_error("{{ 'a'.zap() }}"), "zap"));
  EXPECT_TRUE(has(render_error("{{ nofunc(1) }}"), "nofunc"));
  EXPECT_TRUE(has(render_error("{% if x %}"), "endif"));
  EXPECT_TRUE(has(render_error("{{ 'unterminated }}"), "unterminated"));
  EXPECT_TRUE(has(render_error("{{ raise_exception('boom') }}"), "boom"));
  EXPECT_TRUE(has(render_error("{{ 1 + 'a' }}"), "'+'"));
  // Fuzzer regression: an attribute index past int64 was an uncaught std::out_of_range.
  EXPECT_TRUE(has(render_error("{{ m.55555555555555555555555555 }}"), "out of range"));
  EXPECT_TRUE(has(render_error("{% for i in range(100000000) %}{% endfor %}"), "range"));
  // Hostile inputs hit limits instead of exhausting the stack or memory.
  std::string chain = "{{ x";
  for (int i = 0; i < 5000; ++i) chain += ".a";
  EXPECT_TRUE(has(render_error(chain + " }}"), "too long"));
  std::string sum = "{{ 1";
  for (int i = 0; i < 5000; ++i) sum += " + 1";
  EXPECT_TRUE(has(render_error(sum + " }}"), "too long"));
  EXPECT_TRUE(has(render_error("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}"),
                  "list longer"));
  EXPECT_TRUE(has(render_error("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"),
                  "too long"));
}

}  // namespace
}  // namespace tandem::testing
