#!/usr/bin/env bash
# Configures build/ and builds the named targets (all of them without arguments):
#
#   tools/build.sh playbookd playbook   what run.sh builds: serving needs nothing else
#   tools/build.sh                      what test.sh builds: the rest, reusing those objects
#
# run.sh and test.sh configure with the same flags (these lines, nothing else), so test.sh after
# run.sh compiles only the tests, benchmarks and tools that run.sh left out. Warnings are errors
# in both. Installing the packages is the caller's step (tools/install-deps.sh).
# BUILD_DIR (build), BUILD_TYPE (Release) and JOBS (nproc) override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-Release}
JOBS=${JOBS:-$(nproc)}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ -f "$BUILD_DIR/CMakeCache.txt" ]; then generator=(); fi  # keep the existing generator

# The one configuration. The options are spelled out although they are the defaults, so a build
# dir configured by an older script (PLAYBOOK_WERROR=OFF in its cache) is brought to them.
cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
  -DPLAYBOOK_WERROR=ON -DPLAYBOOK_BUILD_TESTS=ON >/dev/null

targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$BUILD_DIR" -j "$JOBS" "${targets[@]}"
