#!/usr/bin/env bash
# CTest entry of the Node test: installs the `openai` package if needed,
# starts `tandem serve --port 0` on loopback, runs test.mjs against it.
# Usage: run.sh TANDEM_BIN MODEL.gguf [SCRIPT.mjs]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(realpath "$1")"
model="$(realpath "$2")"
cd "$here"
# (Re)install unless the package really imports: an interrupted install can
# leave node_modules/openai half written.
if ! node --input-type=module -e "await import('openai')" >/dev/null 2>&1; then
  rm -rf node_modules
  npm install --no-audit --no-fund --loglevel=error >/dev/null
fi
log="$(mktemp)"
"$bin" serve -m "$model" --host 127.0.0.1 --port 0 --parallel 4 --ctx "${TANDEM_CTX:-256}" -t 1 >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
url=""
for _ in $(seq 1 200); do
  url="$(sed -n 's/^listening on \(http:[^ ]*\)$/\1/p' "$log" | head -n1)"
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "server exited"; exit 1; }
  sleep 0.05
done
[ -n "$url" ] || { cat "$log"; echo "server printed no address"; exit 1; }
for _ in $(seq 1 200); do
  if curl -sf "$url/health" >/dev/null 2>&1 || node -e "fetch('$url/health').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"; then
    break
  fi
  sleep 0.05
done
TANDEM_URL="$url" timeout 120 node "${3:-test.mjs}"  # optional 3rd argument: another script (tools.mjs)
