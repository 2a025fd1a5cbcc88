#!/usr/bin/env bash
# Installs the Debian packages the build needs (idempotent, quiet when present),
# then configures and builds Tandem into ./build (Release, runtime CPU dispatch).
#   scripts/setup.sh            # build into ./build
#   BUILD_DIR=b SANITIZE=1 scripts/setup.sh   # ASan + UBSan build into ./b
#   PACKAGES_ONLY=1 scripts/setup.sh          # install packages, build nothing
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake ninja-build pkg-config git
          libfmt-dev nlohmann-json3-dev libcpp-httplib-dev libpcre2-dev libcli11-dev libutf8proc-dev
          libgtest-dev libgmock-dev libbenchmark-dev clang-14 libclang-rt-14-dev valgrind)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "${PACKAGES_ONLY:-0}" = 1 ] && exit 0

BUILD_DIR=${BUILD_DIR:-build}
args=(-G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release})
[ "${SANITIZE:-0}" = 1 ] && args+=(-DTANDEM_SANITIZE=ON -DTANDEM_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" "${args[@]}" >/dev/null
fi
cmake --build "$BUILD_DIR" -j "$(nproc)"
