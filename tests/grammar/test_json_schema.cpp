// JSON Schema -> grammar: hand-written documents accepted or refused as the
// schema says; outputs sampled under the grammar (random logits over the real
// 100k dbrx vocabulary) parse as JSON (nlohmann) and pass a small independent
// schema validator written here; malformed schemas are errors naming the problem.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <chrono>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "runtime/grammar/constraint.h"
#include "runtime/json_schema.h"
#include "tandem/sampler.h"
#include "tokenizer/tokenizer.h"

namespace {

using json = nlohmann::ordered_json;
using namespace tandem::grammar;

size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// The validator: the keywords json_schema.h enforces, straight from their definitions.
bool validate(const json& v, const json& s, const json& root, std::string& why, const std::string& at = "") {
  auto fail = [&](const std::string& m) {
    why = at + ": " + m;
    return false;
  };
  if (s.is_boolean()) return s.get<bool>() || fail("false schema");
  if (s.contains("$ref")) {
    const std::string r = s["$ref"];
    return validate(v, root.at(json::json_pointer(r.substr(1))), root, why, at);
  }
  if (s.contains("const") && v != s["const"]) return fail("not the const");
  if (s.contains("enum")) {
    bool found = false;
    for (const auto& e : s["enum"]) found = found || e == v;
    if (!found) return fail("not in enum");
  }
  for (const char* k : {"anyOf", "oneOf"}) {
    if (!s.contains(k)) continue;
    bool any = false;
    std::string w;
    for (const auto& sub : s[k]) any = any || validate(v, sub, root, w, at);
    if (!any) return fail(std::string("no ") + k + " branch matches");
  }
  if (s.contains("type")) {
    const std::string t = s["type"];
    const bool ok = (t == "object" && v.is_object()) || (t == "array" && v.is_array()) ||
                    (t == "string" && v.is_string()) || (t == "number" && v.is_number()) ||
                    (t == "integer" && (v.is_number_integer() || v.is_number_unsigned())) ||
                    (t == "boolean" && v.is_boolean()) || (t == "null" && v.is_null());
    if (!ok) return fail("not of type " + t);
  }
  if (v.is_object() && s.contains("properties")) {
    for (const auto& [k, sub] : v.items()) {
      if (!s["properties"].contains(k)) return fail("unexpected property " + k);
      if (!validate(sub, s["properties"][k], root, why, at + "/" + k)) return false;
    }
    if (s.contains("required"))
      for (const auto& r : s["required"])
        if (!v.contains(r.get<std::string>())) return fail("missing required " + r.get<std::string>());
  }
  if (v.is_array()) {
    if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) return fail("too few items");
    if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) return fail("too many items");
    if (s.contains("items"))
      for (size_t i = 0; i < v.size(); ++i)
        if (!validate(v[i], s["items"], root, why, at + "/" + std::to_string(i))) return false;
  }
  if (v.is_string()) {
    const std::string str = v;
    if (s.contains("maxLength") && code_points(str) > s["maxLength"].get<size_t>()) return fail("too long");
    if (s.contains("minLength") && code_points(str) < s["minLength"].get<size_t>()) return fail("too short");
    if (s.contains("pattern") && !std::regex_search(str, std::regex(s["pattern"].get<std::string>())))
      return fail("pattern mismatch: " + str);
  }
  return true;
}

Grammar grammar_of(const json& schema) {
  auto text = tandem::json_schema_to_gbnf(schema);
  EXPECT_TRUE(text.is_ok()) << text.status().message();
  if (!text.is_ok()) return {};
  auto g = parse_gbnf(*text, "schema");
  EXPECT_TRUE(g.is_ok()) << g.status().message() << "\n" << *text;
  return g.is_ok() ? std::move(g).value() : Grammar{};
}

const json kPerson = json::parse(R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 8},
    "age": {"type": "integer"},
    "email": {"type": "string", "pattern": "^[a-z]{1,5}@[a-z]{1,5}\\.(com|org)$"},
    "tags": {"type": "array", "items": {"enum": ["a", "b", 1, null]}, "minItems": 1, "maxItems": 3},
    "score": {"anyOf": [{"type": "number"}, {"type": "boolean"}, {"const": "n/a"}]}
  },
  "required": ["name", "age"]
})");

TEST(JsonSchema, HandWrittenDocumentsAcceptedAsTheSchemaSays) {
  Grammar g = grammar_of(kPerson);
  // Accepted: required only, all properties (schema order), optional ones skipped.
  EXPECT_TRUE(grammar_accepts(g, R"({"name":"Ann","age":3})"));
  EXPECT_TRUE(grammar_accepts(g, R"({ "name": "Zoë", "age": -12, "email": "ab@cd.org", "tags": ["a", 1, null], "score": 1.5e3 })"));
  EXPECT_TRUE(grammar_accepts(g, R"({"name":"","age":0,"score":"n/a"})"));
  EXPECT_TRUE(grammar_accepts(g, R"({"name":"a\"b","age":0,"tags":["b"],"score":false})"));
  // Refused: missing required, wrong type, too long, bad pattern, too many / few items, extra key, bad enum.
  EXPECT_FALSE(grammar_accepts(g, R"({"age":3})"));
  EXPECT_FALSE(grammar_accepts(g, R"({"name":"Ann","age":3.5})"));
  EXPECT_FALSE(grammar_accepts(g, R"({"name":"Annabella9","age":3})"));
  EXPECT_FALSE(grammar_accepts(g, R"({"name":"A","age":3,"email":"ab@cd.net"})"));
  EXPECT_FALSE(grammar_accepts(g, R"({"name":"A","age":3,"tags":["a","a","a","a"]})"));
  EXPECT_FALSE(grammar_accepts(g, R"({"name":"A","age":3,"tags":[]})"));
  EXPECT_FALSE(grammar_accepts(g, R"({"name":"A","age":3,"other":1})"));
  EXPECT_FALSE(grammar_accepts(g, R"({"name":"A","age":3,"tags":["c"]})"));
  EXPECT_FALSE(grammar_accepts(g, R"({"name":"A","age":03})"));  // JSON forbids leading zeros

  Grammar any = tandem::grammar::parse_gbnf(tandem::json_object_gbnf(), "json_object").value();
  EXPECT_TRUE(grammar_accepts(any, R"({"a":[1,{"b":null}],"c":"\u00e9\n"})"));
  EXPECT_FALSE(grammar_accepts(any, R"([1,2])"));  // json_object: an object at the top
  EXPECT_FALSE(grammar_accepts(any, R"({"a":})"));
}

TEST(JsonSchema, MalformedSchemasNameTheProblem) {
  auto err = [](const std::string& text) {
    auto r = tandem::json_schema_to_gbnf(std::string_view(text));
    return r.is_ok() ? std::string("<ok>") : r.status().message();
  };
  EXPECT_NE(err(R"({"type":"int"})").find("unknown type 'int'"), std::string::npos);
  EXPECT_NE(err(R"({"type":"object","properties":{"a":{"type":"strin"}}})").find("/properties/a/type"), std::string::npos);
  EXPECT_NE(err(R"({"type":"object","properties":{"a":{}},"required":["b"]})").find("'b' is required but not in properties"),
            std::string::npos);
  EXPECT_NE(err(R"({"type":"string","pattern":"a(b"})").find("missing ')'"), std::string::npos);
  EXPECT_NE(err(R"({"$ref":"#/$defs/nope"})").find("points to nothing"), std::string::npos);
  EXPECT_NE(err(R"({"type":"array","minItems":3,"maxItems":1})").find("maxItems is below minItems"), std::string::npos);
  EXPECT_NE(err(R"({"enum":[]})").find("/enum"), std::string::npos);
  EXPECT_NE(err("{not json").find("not valid JSON"), std::string::npos);
  EXPECT_NE(err("false").find("matches nothing"), std::string::npos);
}

std::shared_ptr<const GrammarVocab> dbrx_vocab(int32_t& eos) {
  auto f = tandem::gguf::File::open(std::string(TANDEM_FIXTURES) + "/vocab/ggml-vocab-dbrx.gguf");
  EXPECT_TRUE(f.is_ok()) << f.status().message();
  if (!f.is_ok()) return nullptr;
  auto t = tandem::Tokenizer::from_gguf(**f);
  EXPECT_TRUE(t.is_ok());
  if (!t.is_ok()) return nullptr;
  std::vector<std::string> pieces;
  std::vector<bool> eog;
  for (int32_t i = 0; i < (*t)->n_vocab(); ++i) {
    pieces.push_back((*t)->token_to_piece(i, false));
    eog.push_back((*t)->is_eog(i));
    if (eog.back()) eos = i;
  }
  return std::make_shared<const GrammarVocab>(std::move(pieces), std::move(eog));
}

TEST(JsonSchema, SampledOutputsValidate) {
  int32_t eos = -1;
  auto vocab = dbrx_vocab(eos);
  ASSERT_TRUE(vocab);
  ASSERT_GE(eos, 0);
  const std::vector<json> schemas = {
      kPerson,
      json::parse(R"({"type":"array","items":{"type":"number"},"minItems":2,"maxItems":2})"),
      json::parse(R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
                     "kids":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":1}},"required":["v"]}},
                     "$ref":"#/$defs/node"})"),
      json::parse(R"({"type":"object","properties":{"color":{"enum":["red","green"]},"ok":{"type":"boolean"},
                     "n":{"type":"null"},"s":{"type":"string","minLength":2,"maxLength":4}},"required":["color","ok","n","s"]})"),
  };
  int completed = 0, total = 0, steps = 0;
  double with_s = 0, without_s = 0;  // sampling time with the grammar / the same chain without it
  tandem::SamplerOptions plain_opts;
  plain_opts.temperature = 1.0f;
  plain_opts.top_k = 0;
  plain_opts.top_p = 1.0f;
  plain_opts.min_p = 0.0f;
  tandem::Sampler plain(plain_opts);
  for (size_t si = 0; si < schemas.size(); ++si) {
    auto text = tandem::json_schema_to_gbnf(schemas[si]);
    ASSERT_TRUE(text.is_ok()) << text.status().message();
    auto c = GrammarConstraint::create(*text, vocab, "schema");
    ASSERT_TRUE(c.is_ok()) << c.status().message() << "\n" << *text;
    for (uint32_t seed = 0; seed < 5; ++seed) {
      tandem::SamplerOptions so;
      so.temperature = 1.0f;
      so.top_k = 0;
      so.top_p = 1.0f;
      so.min_p = 0.0f;
      so.seed = seed;
      so.constraint = *c;
      tandem::Sampler s(so);
      std::mt19937 rng(seed + 100 * static_cast<uint32_t>(si));
      std::normal_distribution<float> nd(0.0f, 2.0f);
      std::vector<float> logits(static_cast<size_t>(vocab->n_vocab()));
      std::string out;
      bool ended = false;
      for (int step = 0; step < 120 && !ended; ++step) {
        for (auto& l : logits) l = nd(rng);
        logits[static_cast<size_t>(eos)] = 40.0f;
        const auto t0 = std::chrono::steady_clock::now();
        const int32_t t = s.sample(logits.data(), static_cast<int>(logits.size()));
        const auto t1 = std::chrono::steady_clock::now();
        (void)plain.sample(logits.data(), static_cast<int>(logits.size()));
        with_s += std::chrono::duration<double>(t1 - t0).count();
        without_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
        ++steps;
        ASSERT_GE(t, 0) << "stuck after " << out;
        if (vocab->is_eog(t)) {
          ended = true;
        } else {
          ASSERT_TRUE(s.accept(t));
          out += vocab->piece(t);
        }
      }
      ++total;
      if (!ended) continue;
      ++completed;
      json v = json::parse(out, nullptr, false);
      if (v.is_discarded()) {
        std::string hex;
        for (unsigned char ch : out) hex += fmt::format("{:02x} ", ch);
        FAIL() << "schema " << si << ": not JSON: " << hex;
      }
      std::string why;
      EXPECT_TRUE(validate(v, schemas[si], schemas[si], why)) << "schema " << si << ": " << out << "\n" << why;
    }
  }
  EXPECT_GE(completed, total * 3 / 4);
  std::printf("json schema: %d/%d sampled outputs completed and validated; sampling %.3f ms/token with the grammar, "
              "%.3f ms/token without (100352-token vocab, %d steps)\n",
              completed, total, 1e3 * with_s / steps, 1e3 * without_s / steps, steps);
}

}  // namespace
