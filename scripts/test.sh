#!/usr/bin/env bash
# Set up, build and run the whole test suite (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Two tests per core: many tests wait on child processes, sockets or timeouts, and
# the second one fills those waits (2 cores: release 71 -> 55 s, ASan 204 -> 184 s).
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$((2 * $(nproc)))" --timeout 900
