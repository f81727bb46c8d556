#!/usr/bin/env bash
# Installs what is missing, then configures and builds a Release build into build/.
# Used by run.sh and test.sh; BUILD_DIR and BUILD_TYPE override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh

BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-Release}
JOBS=${JOBS:-$(nproc)}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ -f "$BUILD_DIR/CMakeCache.txt" ]; then generator=(); fi  # keep the existing generator

cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "$@"
cmake --build "$BUILD_DIR" -j "$JOBS"
