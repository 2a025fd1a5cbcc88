// Load figures for docs/benchmarks.md: C concurrent streaming clients, each
// sending R requests back to back; reports aggregate generated tokens/s and
// time to first token. Usage: TANDEM_URL=http://127.0.0.1:PORT node bench.mjs C R MAX_TOKENS
const base = process.env.TANDEM_URL;
const [C, R, MAX] = process.argv.slice(2).map(Number);
const prompts = ["Once upon a time", "The little dog", "Lily wanted to", "One day, a bird"];

async function one(i) {
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: prompts[i % prompts.length], max_tokens: MAX, temperature: 0.8, seed: i,
                           logit_bias: { "2": -100 }, stream: true }),
  });
  let ttft = null, tokens = 0, buf = "";
  const dec = new TextDecoder();
  for await (const chunk of res.body) {
    buf += dec.decode(chunk, { stream: true });
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
      const j = JSON.parse(ev.slice(6));
      if (j.usage) tokens = j.usage.completion_tokens;
      else if (ttft === null) ttft = performance.now() - t0;
    }
  }
  return { ttft, tokens };
}

const t0 = performance.now();
const results = [];
await Promise.all(Array.from({ length: C }, async (_, c) => {
  for (let r = 0; r < R; ++r) results.push(await one(c * R + r));
}));
const secs = (performance.now() - t0) / 1000;
const total = results.reduce((a, r) => a + r.tokens, 0);
const ttfts = results.map((r) => r.ttft).sort((a, b) => a - b);
const med = ttfts[Math.floor(ttfts.length / 2)];
console.log(JSON.stringify({ clients: C, requests: results.length, tokens: total, seconds: +secs.toFixed(2),
  tok_per_s: +(total / secs).toFixed(0), ttft_median_ms: +med.toFixed(1), ttft_max_ms: +ttfts.at(-1).toFixed(1) }));
