#!/usr/bin/env bash
# Build the libFuzzer targets with clang-14 and run each for N seconds (default 60)
# on its corpus in fuzz/corpus/<target> (plus the fixtures as seeds). A crash fails.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
PACKAGES_ONLY=1 scripts/setup.sh
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTANDEM_FUZZ=ON -DTANDEM_TESTS=OFF -DTANDEM_BENCH=OFF >/dev/null
fi
# Only the fuzzers (not the `tandem` executable).
cmake --build build-fuzz -j "$(nproc)" --target tandem_fuzzers
shopt -s nullglob
# The targets run side by side, as many at once as there are cores (each one is
# single-threaded: 5 x 30 s take 90 s of wall time on 2 cores, not 150 s). Each
# writes its new inputs to a scratch folder and its log to a file, printed in
# order when it ends; any target that crashes fails the script.
jobs_max=$(nproc)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
names=() pids=()
finish() {  # wait for the oldest running target, print its log, record a failure
  local name=${names[0]} pid=${pids[0]} rc=0
  wait "$pid" || rc=$?
  echo "fuzz: $name for ${secs}s"
  tail -n 3 "$logs/$name.log"
  if [ "$rc" -ne 0 ]; then
    echo "fuzz: $name FAILED (exit $rc); its whole log is in fuzz-failures/$name.log" >&2
    mkdir -p fuzz-failures && cp "$logs/$name.log" fuzz-failures/
    failed=1
  fi
  names=("${names[@]:1}") pids=("${pids[@]:1}")
}
failed=0
for bin in build-fuzz/fuzz/fuzz_*; do
  name=$(basename "$bin")
  corpus=fuzz/corpus/${name#fuzz_}
  mkdir -p "$corpus" "$logs/$name.work"
  "$bin" -max_total_time="$secs" -rss_limit_mb=4096 -max_len=1048576 "$logs/$name.work" "$corpus" \
    -print_final_stats=1 >"$logs/$name.log" 2>&1 &
  names+=("$name") pids+=($!)
  if [ "${#pids[@]}" -ge "$jobs_max" ]; then finish; fi
done
while [ "${#pids[@]}" -gt 0 ]; do finish; done
exit "$failed"
