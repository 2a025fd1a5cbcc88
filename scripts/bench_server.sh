#!/usr/bin/env bash
# Server figures for docs/benchmarks.md: starts `tandem serve -m MODEL` on a
# free loopback port (--parallel 8), runs tests/server/node/bench.mjs with 1, 4
# and 8 concurrent streaming clients, prints a markdown table (aggregate
# generation tok/s, time to first token median / p90 / max) and stops the
# server. Run it on a quiet machine.
#
# Usage: scripts/bench_server.sh MODEL.gguf
# Environment (defaults): TANDEM_BIN (build/bin/tandem), CLIENTS (1,4,8),
#   REQUESTS per client (2), MAX_TOKENS per request (64), CTX per sequence (512),
#   THREADS (all cores), PARALLEL (8), SERVE_ARGS (extra `tandem serve` flags).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -eq 1 ] || { echo "usage: $0 MODEL.gguf" >&2; exit 2; }
model="$(realpath "$1")"
bin="${TANDEM_BIN:-$root/build/bin/tandem}"
[ -x "$bin" ] || { echo "no tandem binary at $bin (build it, or set TANDEM_BIN)" >&2; exit 1; }
command -v node >/dev/null || { echo "node is required" >&2; exit 1; }
clients="${CLIENTS:-1,4,8}"
requests="${REQUESTS:-2}"
max_tokens="${MAX_TOKENS:-64}"
ctx="${CTX:-512}"
threads="${THREADS:-$(nproc)}"
parallel="${PARALLEL:-8}"

# The end-of-text token is banned so every request generates MAX_TOKENS.
eos="$("$bin" inspect "$model" | awk '$1 == "tokenizer.ggml.eos_token_id" && !e { print $3; e = 1 }' || true)"
eos="${eos:-2}"

log="$(mktemp)"
# shellcheck disable=SC2086  # SERVE_ARGS is a list of flags
"$bin" serve -m "$model" --host 127.0.0.1 --port 0 --parallel "$parallel" --ctx "$ctx" -t "$threads" \
  ${SERVE_ARGS:-} >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT

url=""
for _ in $(seq 1 600); do
  url="$(sed -n 's/^listening on \(http:[^ ]*\)$/\1/p' "$log" | head -n1)"
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "the server exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { cat "$log" >&2; echo "the server printed no address" >&2; exit 1; }
ready=0
for _ in $(seq 1 1200); do  # large models take a while to load
  if curl -sf "$url/health" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "the server exited" >&2; exit 1; }
  sleep 0.1
done
[ "$ready" = 1 ] || { cat "$log" >&2; echo "the server did not become ready" >&2; exit 1; }

echo "model: $(basename "$model"); server: --parallel $parallel --ctx $ctx -t $threads ${SERVE_ARGS:-}"
echo "clients: $clients, $requests request(s) per client back to back, $max_tokens tokens each (EOS $eos banned)"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
TANDEM_URL="$url" EOS_ID="$eos" node "$root/tests/server/node/bench.mjs" "$clients" "$requests" "$max_tokens" --markdown
