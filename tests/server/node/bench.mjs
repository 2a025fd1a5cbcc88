// Load figures for docs/benchmarks.md: C concurrent streaming clients, each
// sending R requests back to back (MAX generated tokens each, end of text
// banned so every request runs its full length). For every client count it
// reports aggregate generation tokens/s (all generated tokens / wall time of
// the run), time to first token (median, p90, max over all requests) and the
// median per-stream decode rate (tokens after the first / time after the first).
//
// Usage: TANDEM_URL=http://127.0.0.1:PORT node bench.mjs C[,C...] R MAX [--markdown]
// Environment: EOS_ID (token id to ban, default 2), PROMPT (one prompt for all
// requests instead of the built-in four). One JSON line per client count;
// --markdown adds a table at the end. Exits 1 when any request failed.
const base = process.env.TANDEM_URL;
const args = process.argv.slice(2);
const markdown = args.includes("--markdown");
const [clist, R, MAX] = args.filter((a) => !a.startsWith("--"));
const counts = (clist ?? "").split(",").map(Number);
if (!base || !counts.length || counts.some((c) => !(c > 0)) || !(Number(R) > 0) || !(Number(MAX) > 0)) {
  console.error("usage: TANDEM_URL=http://HOST:PORT node bench.mjs C[,C...] R MAX [--markdown]");
  process.exit(2);
}
const eos = process.env.EOS_ID ?? "2";
const prompts = process.env.PROMPT
  ? [process.env.PROMPT]
  : ["Once upon a time", "The little dog", "Lily wanted to", "One day, a bird"];

// One streaming request: time to first token, tokens, and decode time after the first.
async function one(i, maxTokens) {
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: prompts[i % prompts.length], max_tokens: maxTokens, temperature: 0.8, seed: i,
                           logit_bias: { [eos]: -100 }, stream: true }),
  });
  if (res.status !== 200) return { error: `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}` };
  let ttft = null, tFirst = null, tLast = null, tokens = 0, done = false, error = null, buf = "";
  const dec = new TextDecoder();
  for await (const chunk of res.body) {
    buf += dec.decode(chunk, { stream: true });
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!ev.startsWith("data: ")) continue;
      if (ev === "data: [DONE]") { done = true; continue; }
      const j = JSON.parse(ev.slice(6));
      const now = performance.now();
      if (j.error) error = j.error.message;
      else if (j.usage) tokens = j.usage.completion_tokens;
      else {
        if (ttft === null) { ttft = now - t0; tFirst = now; }
        tLast = now;
      }
    }
  }
  if (error || !done || ttft === null) return { error: error ?? "the stream ended without [DONE] or tokens" };
  const rate = tokens > 1 && tLast > tFirst ? (tokens - 1) / ((tLast - tFirst) / 1000) : null;
  return { ttft, tokens, rate };
}

// Nearest-rank percentile of an ascending array.
const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.max(0, Math.ceil(p * xs.length) - 1))];

async function run(C) {
  const t0 = performance.now();
  const results = [];
  await Promise.all(Array.from({ length: C }, async (_, c) => {
    for (let r = 0; r < Number(R); ++r) results.push(await one(c * Number(R) + r, Number(MAX)));
  }));
  const secs = (performance.now() - t0) / 1000;
  const good = results.filter((r) => !r.error);
  const failed = results.length - good.length;
  const total = good.reduce((a, r) => a + r.tokens, 0);
  const ttfts = good.map((r) => r.ttft).sort((a, b) => a - b);
  const rates = good.map((r) => r.rate).filter((x) => x !== null).sort((a, b) => a - b);
  const out = { clients: C, requests: results.length, failed, max_tokens: Number(MAX), tokens: total,
                seconds: +secs.toFixed(2), tok_per_s: +(total / secs).toFixed(1) };
  if (ttfts.length) {
    Object.assign(out, { ttft_median_ms: +pct(ttfts, 0.5).toFixed(1), ttft_p90_ms: +pct(ttfts, 0.9).toFixed(1),
                         ttft_max_ms: +ttfts.at(-1).toFixed(1) });
  }
  if (rates.length) out.stream_tok_per_s_median = +pct(rates, 0.5).toFixed(1);
  if (failed) out.first_error = results.find((r) => r.error).error;
  console.log(JSON.stringify(out));
  return out;
}

await one(0, 4);  // warm-up (first-touch page faults, thread start-up); not counted
const rows = [];
for (const C of counts) rows.push(await run(C));
if (markdown) {
  console.log("\n| concurrent clients | requests | tokens per request | aggregate generation tok/s | " +
              "time to first token, median / p90 / max | per-stream tok/s, median |");
  console.log("|---|---|---|---|---|---|");
  for (const r of rows) {
    const ttft = r.ttft_median_ms === undefined ? "—"
      : `${r.ttft_median_ms.toFixed(0)} / ${r.ttft_p90_ms.toFixed(0)} / ${r.ttft_max_ms.toFixed(0)} ms`;
    console.log(`| ${r.clients} | ${r.requests}${r.failed ? ` (${r.failed} failed)` : ""} | ${r.max_tokens} | ` +
                `${r.tok_per_s.toFixed(1)} | ${ttft} | ${r.stream_tok_per_s_median?.toFixed(1) ?? "—"} |`);
  }
}
process.exit(rows.some((r) => r.failed) ? 1 : 0);
