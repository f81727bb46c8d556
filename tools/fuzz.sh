#!/usr/bin/env bash
# Runs every libFuzzer target for SECONDS each (default 60), starting from the
# committed seed corpus (tests/fuzz/corpus/<name>/). Exits non-zero on any
# finding (crash, hang, leak, sanitizer report), naming the input that caused it.
#
#   tools/fuzz.sh [SECONDS] [TARGET...]      e.g. tools/fuzz.sh 600 frame params
#
# Uses the sanitizer build in ${SAN_BUILD_DIR:-build-san} (tools/test.sh makes
# it; configured as docs/testing.md shows) and builds the targets it lacks.
# Inputs the fuzzer finds interesting accumulate in $SAN_BUILD_DIR/fuzz/<name>/
# (not committed); a finding is written to $SAN_BUILD_DIR/fuzz/findings/.
# Targets run FUZZ_JOBS at a time (default: the number of cores); FUZZ_NO_BUILD=1
# uses the binaries as they are.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${1:-60}
shift || true
ALL=(jsonl csv config records index_file frame params embeddings)
[ $# -gt 0 ] && TARGETS=("$@") || TARGETS=("${ALL[@]}")
DIR=${SAN_BUILD_DIR:-build-san}
JOBS=${FUZZ_JOBS:-$(nproc)}

if [ ! -f "$DIR/CMakeCache.txt" ]; then
  echo "fuzz: no sanitizer build in $DIR: run tools/test.sh, or configure it as docs/testing.md shows" >&2
  exit 2
fi
[ "${FUZZ_NO_BUILD:-0}" = "1" ] || cmake --build "$DIR" -j "$(nproc)" --target "${TARGETS[@]/#/fuzz_}"

# Suppressions and options: tests/sanitizers/ explains each.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0}

mkdir -p "$DIR/fuzz/findings" "$DIR/fuzz/logs"
run_one() {
  local name=$1 work="$DIR/fuzz/$1" log="$DIR/fuzz/logs/$1.log"
  mkdir -p "$work"
  # -timeout: one input running longer is a hang; -rss_limit_mb: a leak or a
  # runaway allocation; -max_len: frames and records of realistic size.
  if "$DIR/bin/fuzz_$name" "$work" "tests/fuzz/corpus/$name" \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
      -print_final_stats=1 -artifact_prefix="$DIR/fuzz/findings/$name-" >"$log" 2>&1; then
    local runs
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    printf 'fuzz: %-10s ok   %10s executions in %ss\n' "$name" "${runs:-?}" "$SECONDS_EACH"
  else
    printf 'fuzz: %-10s FAILED, log: %s\n' "$name" "$log"
    grep -E "ERROR|runtime error|SUMMARY|Test unit written|deadly signal|out-of-memory|timeout" "$log" | head -20 | sed 's/^/    /'
    return 1
  fi
}

failed=0
pids=()
names=()
for name in "${TARGETS[@]}"; do
  run_one "$name" &
  pids+=($!)
  names+=("$name")
  if [ ${#pids[@]} -ge "$JOBS" ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
    names=("${names[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
if [ "$failed" -ne 0 ]; then
  echo "fuzz: FAILED: reproduce with $DIR/bin/fuzz_NAME FILE (the file named above); docs/testing.md" >&2
  exit 1
fi
echo "fuzz: all ${#TARGETS[@]} targets clean"
