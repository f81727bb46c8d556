#!/usr/bin/env bash
# The test command: installs what is missing, builds (Release, build/: the directory and flags
# run.sh uses, so only what run.sh did not build is compiled), runs every test with ctest;
# then the same unit and integration tests built with clang's AddressSanitizer and
# UndefinedBehaviorSanitizer (build-san/), and every fuzz target for a bounded time.
# .ci/run calls exactly this. docs/testing.md describes each part.
#
# Arguments go to both ctest runs (e.g. -R transport). Environment:
#   BUILD_DIR, SAN_BUILD_DIR   build directories (build, build-san)
#   FUZZ_SECONDS               seconds per fuzz target (30; 0 = replay the corpus only)
#   PLAYBOOK_SANITIZERS=0      skip the sanitizer build and the fuzzing (quick local runs)
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh --with-test-tools
tools/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "${JOBS:-$(nproc)}" "$@"

if [ "${PLAYBOOK_SANITIZERS:-1}" = "0" ]; then
  echo "test: sanitizers and fuzzing skipped (PLAYBOOK_SANITIZERS=0)"
  exit 0
fi

# ---- ASan + UBSan build: unit and integration tests (the daemon they start is
# sanitized too), the fuzz targets, and their corpus replays (fuzz_*_corpus).
SAN=${SAN_BUILD_DIR:-build-san}
generator=()
command -v ninja >/dev/null && [ ! -f "$SAN/CMakeCache.txt" ] && generator=(-G Ninja)
start=$(date +%s)
cmake -S . -B "$SAN" "${generator[@]}" -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -gline-tables-only" \
  -DPLAYBOOK_SANITIZE=address,undefined -DPLAYBOOK_FUZZ=ON \
  -DPLAYBOOK_BUILD_TESTS=ON -DPLAYBOOK_WERROR=ON
cmake --build "$SAN" -j "${JOBS:-$(nproc)}"
echo "test: sanitizer build took $(( $(date +%s) - start ))s"

# Halt on the first report; leaks are findings. tests/sanitizers/ holds the
# suppressions and says why each is there.
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:check_initialization_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0
# Excluded here (they run in the Release pass above): the Chromium-driven
# dashboard and panel tests (tests/integration/dashboard_test.cpp, the PanelBrowser
# suite of panel_test.cpp). They test the page in
# a browser; the daemon paths they reach (HTTP, the embedded files, tokens) are
# driven by the transport and security tests, which do run sanitized. Likewise
# the TypeScript client's tests (clients.js): they test the client, not the daemon.
start=$(date +%s)
ctest --test-dir "$SAN" --output-on-failure -j "${JOBS:-$(nproc)}" \
  -E "${SAN_EXCLUDE:-^Dashboard\.|^PanelBrowser\.|^clients\.js\$}" "$@"
echo "test: sanitized tests took $(( $(date +%s) - start ))s"

# ---- Fuzzing: every target for FUZZ_SECONDS from the committed corpus.
if [ "${FUZZ_SECONDS:-30}" != "0" ]; then
  start=$(date +%s)
  SAN_BUILD_DIR="$SAN" tools/fuzz.sh "${FUZZ_SECONDS:-30}"
  echo "test: fuzzing took $(( $(date +%s) - start ))s"
fi
