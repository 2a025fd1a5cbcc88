// Tool calling and structured output through the official OpenAI Node client:
// a required tool call (grammar-constrained on the random-ish demo model so
// the flow is testable), its streamed deltas, the follow-up request with the
// assistant's tool_calls and the `tool` result, a named tool_choice,
// response_format json_schema / json_object, and 400s for malformed schemas.
import assert from "node:assert/strict";
import OpenAI from "openai";

const base = process.env.TANDEM_URL;
assert.ok(base, "TANDEM_URL is not set");
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 });
const model = "tiny-hybrid-stories";

const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Current weather in a city",
      parameters: {
        type: "object",
        properties: {
          city: { type: "string", maxLength: 10 },
          unit: { enum: ["c", "f"] },
        },
        required: ["city", "unit"],
      },
    },
  },
  {
    type: "function",
    function: {
      name: "add",
      parameters: { type: "object", properties: { a: { type: "integer" }, b: { type: "integer" } }, required: ["a", "b"] },
    },
  },
];

function checkWeatherCall(call) {
  assert.equal(call.type, "function");
  assert.match(call.id, /^call_/);
  assert.equal(call.function.name, "get_weather");
  const args = JSON.parse(call.function.arguments);
  assert.equal(typeof args.city, "string");
  assert.ok([...args.city].length <= 10, `city too long: ${args.city}`);
  assert.ok(["c", "f"].includes(args.unit), `unit ${args.unit}`);
  assert.deepEqual(Object.keys(args), ["city", "unit"]);
}

const tests = {
  async requiredToolCallRoundTrip() {
    const messages = [{ role: "user", content: "What is the weather in Paris?" }];
    const r = await client.chat.completions.create({
      model, messages, tools, tool_choice: { type: "function", function: { name: "get_weather" } },
      max_tokens: 300, seed: 1,
    });
    const choice = r.choices[0];
    assert.equal(choice.finish_reason, "tool_calls");
    assert.equal(choice.message.tool_calls.length, 1);
    const call = choice.message.tool_calls[0];
    checkWeatherCall(call);

    // Follow-up: the assistant's call and the tool's result go back in.
    const follow = await client.chat.completions.create({
      model,
      messages: [
        ...messages,
        { role: "assistant", content: null, tool_calls: [call] },
        { role: "tool", tool_call_id: call.id, content: JSON.stringify({ temperature: 21 }) },
      ],
      tools,
      tool_choice: "none",
      max_tokens: 8,
      temperature: 0,
    });
    assert.equal(follow.object, "chat.completion");
    assert.equal(typeof follow.choices[0].message.content, "string");
    assert.ok(["stop", "length"].includes(follow.choices[0].finish_reason));
  },

  async requiredAnyToolStreamsDeltas() {
    const args = { model, messages: [{ role: "user", content: "Add 2 and 3, or tell the weather." }], tools,
                   tool_choice: "required", max_tokens: 300, seed: 7 };
    const whole = await client.chat.completions.create(args);
    assert.equal(whole.choices[0].finish_reason, "tool_calls");
    const stream = await client.chat.completions.create({ ...args, stream: true });
    const calls = [];
    let finish = null;
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        if (c.finish_reason) finish = c.finish_reason;
        for (const d of c.delta?.tool_calls ?? []) {
          calls[d.index] ??= { id: "", type: "function", function: { name: "", arguments: "" } };
          if (d.id) calls[d.index].id = d.id;
          if (d.function?.name) calls[d.index].function.name += d.function.name;
          if (d.function?.arguments) calls[d.index].function.arguments += d.function.arguments;
        }
      }
    }
    assert.equal(finish, "tool_calls");
    assert.equal(calls.length, 1);
    // Same seed, same constrained output: same call (ids differ).
    assert.equal(calls[0].function.name, whole.choices[0].message.tool_calls[0].function.name);
    assert.deepEqual(JSON.parse(calls[0].function.arguments), JSON.parse(whole.choices[0].message.tool_calls[0].function.arguments));
    const name = calls[0].function.name;
    assert.ok(["get_weather", "add"].includes(name));
    if (name === "get_weather") checkWeatherCall(calls[0]);
    else {
      const a = JSON.parse(calls[0].function.arguments);
      assert.ok(Number.isInteger(a.a) && Number.isInteger(a.b));
    }
  },

  async responseFormatJsonSchema() {
    const schema = {
      type: "object",
      properties: { name: { type: "string", maxLength: 6 }, age: { type: "integer" }, pet: { enum: ["cat", "dog"] } },
      required: ["name", "age", "pet"],
    };
    const r = await client.chat.completions.create({
      model, messages: [{ role: "user", content: "A person as JSON" }], max_tokens: 200, seed: 3,
      response_format: { type: "json_schema", json_schema: { name: "person", schema } },
    });
    assert.equal(r.choices[0].finish_reason, "stop");
    const v = JSON.parse(r.choices[0].message.content);
    assert.deepEqual(Object.keys(v), ["name", "age", "pet"]);
    assert.ok(typeof v.name === "string" && [...v.name].length <= 6);
    assert.ok(Number.isInteger(v.age));
    assert.ok(["cat", "dog"].includes(v.pet));

    const o = await client.chat.completions.create({
      model, messages: [{ role: "user", content: "JSON please" }], max_tokens: 40, seed: 4,
      response_format: { type: "json_object" },
    });
    const text = o.choices[0].message.content;
    assert.ok(text.startsWith("{"), text);
    if (o.choices[0].finish_reason === "stop") assert.equal(typeof JSON.parse(text), "object");
  },

  async malformedSchemaAndToolsAre400() {
    await assert.rejects(
      client.chat.completions.create({
        model, messages: [{ role: "user", content: "x" }], max_tokens: 4,
        response_format: { type: "json_schema", json_schema: { name: "bad", schema: { type: "int" } } },
      }),
      (e) => e.status === 400 && /unknown type 'int'/.test(e.message),
    );
    await assert.rejects(
      client.chat.completions.create({
        model, messages: [{ role: "user", content: "x" }], max_tokens: 4,
        tools: [{ type: "function", function: { description: "no name" } }],
      }),
      (e) => e.status === 400 && /tools\[0\]\.function\.name/.test(e.message),
    );
    await assert.rejects(
      client.chat.completions.create({
        model, messages: [{ role: "user", content: "x" }], max_tokens: 4, tools,
        tool_choice: { type: "function", function: { name: "nope" } },
      }),
      (e) => e.status === 400 && /nope/.test(e.message),
    );
  },
};

let failed = 0;
for (const [name, fn] of Object.entries(tests)) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
  }
}
console.log(failed ? `${failed} test(s) failed` : "all node tool tests passed");
process.exit(failed ? 1 : 0);
