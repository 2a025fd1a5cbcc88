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
for bin in build-fuzz/fuzz/fuzz_*; do
  name=$(basename "$bin")
  corpus=fuzz/corpus/${name#fuzz_}
  mkdir -p "$corpus"
  work=$(mktemp -d)
  echo "fuzz: $name for ${secs}s"
  "$bin" -max_total_time="$secs" -rss_limit_mb=4096 -max_len=1048576 "$work" "$corpus" \
    -print_final_stats=1 2>&1 | tail -n 3
  rm -rf "$work"
done
