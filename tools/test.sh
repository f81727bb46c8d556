#!/usr/bin/env bash
# The test command: installs what is missing, builds (Release, build/), runs every test with ctest.
# .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh --with-test-tools
tools/build.sh -DPLAYBOOK_BUILD_TESTS=ON -DPLAYBOOK_WERROR=ON
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "${JOBS:-$(nproc)}" "$@"
