#!/usr/bin/env bash
# The hot-path benchmark of issue 10: a daemon with 100,000 assets (d=384, clustered vectors
# given by the client), the load client on the same machine. Prints a Markdown table:
#   import and graph build; assets.search against recommend on the same queries (stage filter,
#   about 35% eligible; narrow filter, about 2%); feedback.record with realistic events at 1, 10
#   and 100 per call from 16 connections; RSS; SIGTERM to exit; start to first answered recommend.
#
#   tools/bench_hot.sh [BIN_DIR]           BIN_DIR holds playbookd, playbook, playbook-loadgen
#                                          (default build/bin)
# Environment: ASSETS (100000), SECONDS_EACH (5), PORT (7791), WORK (/tmp/pb-hot: generated
# inputs are kept there and reused; the data dir is made afresh under it), CONNS ("1 4 8"),
# IMPORT_ONLY (1: only the import and the graph, then stop; the data dir is removed).
# Compare two builds in one run: tools/bench_hot.sh /path/to/old/bin; tools/bench_hot.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=$(cd "${1:-build/bin}" && pwd)
ASSETS=${ASSETS:-100000}
SECS=${SECONDS_EACH:-5}
PORT=${PORT:-7791}
WORK=${WORK:-/tmp/pb-hot}
CONNS=${CONNS:-"1 4 8"}
URL="ws://127.0.0.1:$PORT/v1"
LOG="$WORK/bench.log"
mkdir -p "$WORK"
: >"$LOG"

gen() {  # gen FILE ARGS...: generate once per WORK dir
  local f="$WORK/$1"
  shift
  [ -s "$f" ] || "$BIN/playbook-loadgen" --generate "$@" >"$f"
}
echo "generating inputs in $WORK (kept for the next run)" >&2
gen "assets-$ASSETS.jsonl" assets --count "$ASSETS"
gen search-stage.txt search --count 2000
gen recommend-stage.txt recommend --count 2000
gen search-narrow.txt search --count 2000 --narrow 1
gen recommend-narrow.txt recommend --count 2000 --narrow 1
for b in 1 10 100; do gen "feedback-$b.txt" feedback --count 2000 --batch "$b" --assets "$ASSETS"; done

DATA="$WORK/data"
rm -rf "$DATA"
PID=
start_daemon() {
  "$BIN/playbookd" --data-dir "$DATA" --port "$PORT" --log-level warn >>"$WORK/playbookd.out" 2>&1 &
  PID=$!
}
stop_daemon() {
  [ -n "$PID" ] || return 0
  kill -TERM "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=
}
trap stop_daemon EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
call() { "$BIN/playbook" call --url "$URL" "$@" 2>/dev/null; }
wait_answer() {  # until METHOD PARAMS answers without error; prints nothing
  for _ in $(seq 1 6000); do
    if out=$(call "$@") && ! grep -q '"error"' <<<"$out"; then return 0; fi
    sleep 0.01
  done
  echo "bench_hot: no answer to $1" >&2
  return 1
}
field() { grep -o "\"$1\": *[0-9a-z]*" | head -1 | sed 's/.*: *//'; }

echo "starting $BIN/playbookd on $DATA" >&2
start_daemon
wait_answer index.status '{}'

cpu() { awk '{ printf "%.1f", ($14 + $15) / 100 }' "/proc/$PID/stat"; }  # the daemon's CPU seconds
c0=$(cpu)
t0=$(now)
"$BIN/playbook" import --url "$URL" --no-progress "$WORK/assets-$ASSETS.jsonl" >>"$LOG" 2>&1
t1=$(now)
c1=$(cpu)
echo "imported $ASSETS assets in $(secs "$t0" "$t1") s; waiting for the graph" >&2
tg=
while :; do
  st=$(call index.status '{}')
  # The graph holds every asset (searches use it) before the build saves it.
  if [ -z "$tg" ] && [ "$(field exact_assets <<<"$st")" = "0" ]; then tg=$(now) cg=$(cpu); fi
  # Done when no build runs and nothing is left outside the graph (or the catalog is too small
  # for one: "index": "exact").
  if [ "$(field rebuilding <<<"$st")" = "false" ] &&
     { [ "$(field exact_assets <<<"$st")" = "0" ] || grep -q '"index": "exact"' <<<"$st"; }; then break; fi
  sleep 0.2
done
t2=$(now)
c2=$(cpu)

row() { printf '| %s | %s |\n' "$1" "$2"; }
load() {  # load METHOD FILE CONNS -> "req/s p50 p99" (ms)
  local out
  out=$("$BIN/playbook-loadgen" --url "$URL" --connections "$3" --seconds "$SECS" --method "$1" --params-file "$2")
  echo "$1 $2 c=$3: $out" >>"$LOG"
  if grep -q "errors=[1-9]" <<<"$out"; then echo "bench_hot: errors in $1 $2 (see $LOG)" >&2; fi
  awk '/throughput=/ { for (i = 1; i <= NF; ++i) if ($i ~ /^throughput=/) { split($i, a, "="); t = a[2] } }
       /latency_us/ { for (i = 1; i <= NF; ++i) { if ($i ~ /^p50=/) { split($i, a, "="); p50 = a[2] }
                                                   if ($i ~ /^p99=/) { split($i, a, "="); p99 = a[2] } } }
       END { printf "%s %.2f %.2f", t, p50 / 1000, p99 / 1000 }' <<<"$out"
}

echo "| what | figure |"
echo "| --- | --- |"
row "import of $ASSETS assets with vectors (playbook import)" "$(secs "$t0" "$t1") s"
row "graph holding every asset after the import's end" "$(secs "$t1" "${tg:-$t2}") s more"
row "graph searchable and saved after the import's end" "$(secs "$t1" "$t2") s more"
row "daemon CPU: import / until the graph holds every asset / until saved" \
  "$(awk -v a="$c0" -v b="$c1" -v g="${cg:-$c2}" -v c="$c2" 'BEGIN { printf "%.1f / %.1f / %.1f s", b - a, g - a, c - a }')"
if [ "${IMPORT_ONLY:-0}" = 1 ]; then
  stop_daemon
  rm -rf "$DATA"
  exit 0
fi
# Warm up both paths once.
load assets.search "$WORK/search-stage.txt" 2 >/dev/null
load recommend "$WORK/recommend-stage.txt" 2 >/dev/null
for filter in stage narrow; do
  best_s=0 best_r=0
  for c in $CONNS; do
    read -r s_rps s_p50 s_p99 <<<"$(load assets.search "$WORK/search-$filter.txt" "$c")"
    read -r r_rps r_p50 r_p99 <<<"$(load recommend "$WORK/recommend-$filter.txt" "$c")"
    row "$filter filter, $c client(s): assets.search / recommend" \
      "$s_rps / $r_rps req/s; p50 $s_p50 / $r_p50 ms; p99 $s_p99 / $r_p99 ms"
    best_s=$(awk -v a="$best_s" -v b="$s_rps" 'BEGIN { print (b > a ? b : a) }')
    best_r=$(awk -v a="$best_r" -v b="$r_rps" 'BEGIN { print (b > a ? b : a) }')
  done
  row "$filter filter, best: recommend / assets.search" \
    "$(awk -v r="$best_r" -v s="$best_s" 'BEGIN { printf "%d / %d req/s = %.0f%%", r, s, 100 * r / s }')"
done
for b in 1 10 100; do
  read -r rps p50 p99 <<<"$(load feedback.record "$WORK/feedback-$b.txt" 16)"
  row "feedback.record, 16 connections, $b events per call" \
    "$(awk -v r="$rps" -v b="$b" 'BEGIN { printf "%d events/s", r * b }'); p50 $p50 ms, p99 $p99 ms"
done
row "RSS serving" "$(awk '/VmRSS/ { printf "%d MiB", $2 / 1024 }' "/proc/$PID/status")"

t0=$(now)
stop_daemon
t1=$(now)
row "SIGTERM to exit" "$(secs "$t0" "$t1") s"
first=$(head -1 "$WORK/recommend-stage.txt" | sed 's/{n}/restart/')
t0=$(now)
start_daemon
wait_answer recommend "$first"
t1=$(now)
row "start to first answered recommend" "$(secs "$t0" "$t1") s"
stop_daemon
echo "raw loadgen output: $LOG" >&2
