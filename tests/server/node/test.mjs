// `tandem serve` driven by the official OpenAI Node client: completions, chat,
// streaming, n > 1, stop strings, usage. TANDEM_URL is the server's base URL.
import assert from "node:assert/strict";
import OpenAI from "openai";

const base = process.env.TANDEM_URL;
assert.ok(base, "TANDEM_URL is not set");
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 });

const tokenCount = async (text) => {
  const r = await fetch(`${base}/tokenize`, { method: "POST", body: JSON.stringify({ content: text }) });
  return (await r.json()).tokens.length;
};

const tests = {
  async models() {
    const list = await client.models.list();
    assert.equal(list.data.length, 1);
    assert.equal(list.data[0].id, "tiny-hybrid-stories");
  },

  async completion() {
    const prompt = "Once upon a time";
    const r = await client.completions.create({ model: "tiny-hybrid-stories", prompt, max_tokens: 12, temperature: 0 });
    assert.equal(r.object, "text_completion");
    assert.equal(r.choices.length, 1);
    assert.ok(r.choices[0].text.length > 0);
    assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
    assert.equal(r.usage.prompt_tokens, await tokenCount(prompt));
    if (r.choices[0].finish_reason === "length") assert.equal(r.usage.completion_tokens, 12);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  },

  async chat() {
    const r = await client.chat.completions.create({
      model: "tiny-hybrid-stories",
      messages: [{ role: "system", content: "You tell stories." }, { role: "user", content: "A cat?" }],
      max_tokens: 10,
      temperature: 0,
    });
    assert.equal(r.object, "chat.completion");
    assert.equal(r.choices[0].message.role, "assistant");
    assert.equal(typeof r.choices[0].message.content, "string");
    assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
  },

  async streamingMatchesNonStreaming() {
    const args = { model: "tiny-hybrid-stories", prompt: "The little dog", max_tokens: 20, temperature: 0 };
    const whole = await client.completions.create(args);
    const stream = await client.completions.create({ ...args, stream: true });
    let text = "";
    let usage = null;
    let finish = null;
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        text += c.text;
        if (c.finish_reason) finish = c.finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, whole.choices[0].text);
    assert.equal(finish, whole.choices[0].finish_reason);
    // cached_tokens (prompt_tokens_details) depends on what the prefix cache holds by then.
    for (const k of ["prompt_tokens", "completion_tokens", "total_tokens"]) assert.equal(usage[k], whole.usage[k]);

    const chatArgs = { model: "tiny-hybrid-stories", messages: [{ role: "user", content: "Hi" }], max_tokens: 8, temperature: 0 };
    const chatWhole = await client.chat.completions.create(chatArgs);
    const chatStream = await client.chat.completions.create({ ...chatArgs, stream: true });
    let content = "";
    for await (const chunk of chatStream) for (const c of chunk.choices) content += c.delta?.content ?? "";
    assert.equal(content, chatWhole.choices[0].message.content);
  },

  async severalChoices() {
    const r = await client.completions.create({ model: "tiny-hybrid-stories", prompt: "Lily", max_tokens: 10, temperature: 0, n: 3 });
    assert.equal(r.choices.length, 3);
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
    // Greedy forks of one prompt are identical.
    assert.equal(r.choices[1].text, r.choices[0].text);
    assert.equal(r.choices[2].text, r.choices[0].text);
    const s = await client.chat.completions.create({
      model: "tiny-hybrid-stories", messages: [{ role: "user", content: "Go" }], max_tokens: 6, n: 2, seed: 3,
    });
    assert.equal(s.choices.length, 2);
  },

  async stopString() {
    const args = { model: "tiny-hybrid-stories", prompt: "Once upon a time", max_tokens: 30, temperature: 0 };
    const full = (await client.completions.create(args)).choices[0].text;
    assert.ok(full.length > 6, `too short: ${JSON.stringify(full)}`);
    const stop = full.slice(4, 7);
    const cut = full.indexOf(stop);
    const r = await client.completions.create({ ...args, stop: [stop] });
    assert.equal(r.choices[0].text, full.slice(0, cut));
    assert.equal(r.choices[0].finish_reason, "stop");
  },

  async errors() {
    await assert.rejects(
      client.completions.create({ model: "nope", prompt: "x", max_tokens: 2 }),
      (e) => e.status === 404 && e.code === "model_not_found",
    );
    await assert.rejects(
      client.completions.create({ model: "tiny-hybrid-stories", prompt: "x", max_tokens: -3 }),
      (e) => e.status === 400 && e.type === "invalid_request_error",
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
console.log(failed ? `${failed} test(s) failed` : "all node tests passed");
process.exit(failed ? 1 : 0);
