#!/usr/bin/env bash
# Feedback ingest: feedback.record with realistic events (used/viewed/dismissed/stage changes/won
# on known leads, tools/loadgen.cpp --generate feedback) at 1, 10 and 100 events per call from 16
# connections, on a fresh daemon, for each build given, in one run (compare builds within a run:
# these machines are noisy). Besides throughput and latency it prints the daemon's CPU time per
# event (user + system, from /proc), which a busy machine disturbs less than throughput. Then
# SIGTERM to exit and start to healthz "ok" on what was written. The busiest thread's CPU per event:
# before a7be011 the feedback writer's (one thread took every group), the serial part that bounds
# the rate; since then the callers write the groups themselves, so it is only the worker that led
# most groups. With PERF=1 the last column is the group writes' CPU per event wherever they run
# (FeedbackStore::WriteGroup's share of `perf record -g` samples of the daemon times its CPU).
#
#   tools/bench_feedback.sh [BIN_DIR...]   each BIN_DIR holds playbookd, playbook-loadgen
#                                          (default build/bin)
# Environment: SECONDS_EACH (10), PORT (7792), WORK (/tmp/pb-feedback), CONNS (16),
# BATCHES ("1 10 100"), PERF (0; 1: also the group writes' CPU, needs perf).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECONDS_EACH:-10}
PORT=${PORT:-7792}
WORK=${WORK:-/tmp/pb-feedback}
CONNS=${CONNS:-16}
BATCHES=${BATCHES:-"1 10 100"}
URL="ws://127.0.0.1:$PORT/v1"
[ $# -gt 0 ] || set -- build/bin
mkdir -p "$WORK"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
wait_listening() {
  for _ in $(seq 1 3000); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3 && grep -q '"ok"' <&3) 2>/dev/null; then
      return 0
    fi
    sleep 0.01
  done
  echo "bench_feedback: the daemon did not become ready" >&2
  return 1
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# "tid ticks" for each thread of process $1.
thread_ticks() {
  for t in /proc/"$1"/task/*; do echo "${t##*/} $(awk '{ print $14 + $15 }' "$t/stat" 2>/dev/null || echo 0)"; done
}
# The most ticks any thread used between two thread_ticks listings.
busiest() { awk 'NR == FNR { a[$1] = $2; next } { d = $2 - a[$1]; if (d > m) m = d } END { print m + 0 }' "$1" "$2"; }
PERF=${PERF:-0}
echo "| build | events per call | events/s | p50 ms | p99 ms | daemon CPU per event | busiest thread CPU per event |$([ "$PERF" = 1 ] && echo " group writes CPU per event |")"
echo "| --- | --- | --- | --- | --- | --- | --- |$([ "$PERF" = 1 ] && echo " --- |")"
for dir in "$@"; do
  BIN=$(cd "$dir" && pwd)
  for b in $BATCHES; do
    f="$WORK/feedback-$b.txt"
    [ -s "$f" ] || "$BIN/playbook-loadgen" --generate feedback --count 2000 --batch "$b" --assets 1000 >"$f"
  done
  DATA="$WORK/data"
  rm -rf "$DATA"
  "$BIN/playbookd" --data-dir "$DATA" --port "$PORT" --log-level warn >>"$WORK/playbookd.out" 2>&1 &
  PID=$!
  trap 'kill -TERM $PID 2>/dev/null || true' EXIT
  wait_listening
  for b in $BATCHES; do
    c0=$(cpu_ticks "$PID")
    thread_ticks "$PID" >"$WORK/threads0"
    if [ "$PERF" = 1 ]; then
      perf record -q -F 999 -g -p "$PID" -o "$WORK/perf.data" -- sleep "$SECS" >/dev/null 2>&1 &
      PERF_PID=$!
    fi
    out=$("$BIN/playbook-loadgen" --url "$URL" --connections "$CONNS" --seconds "$SECS" --method feedback.record \
      --params-file "$WORK/feedback-$b.txt")
    c1=$(cpu_ticks "$PID")
    thread_ticks "$PID" >"$WORK/threads1"
    wt=$(busiest "$WORK/threads0" "$WORK/threads1")
    share=
    if [ "$PERF" = 1 ]; then
      wait "$PERF_PID" || true
      share=$(perf report -i "$WORK/perf.data" --children --sort sym -g none --stdio 2>/dev/null |
        awk '/FeedbackStore::WriteGroup/ && !n++ { sub("%", "", $1); print $1 }' || true)
      share=${share:-0}
    fi
    if grep -q "errors=[1-9]" <<<"$out"; then echo "bench_feedback: errors: $out" >&2; fi
    awk -v dir="$dir" -v b="$b" -v ticks=$((c1 - c0)) -v wt="$wt" -v share="$share" -v hz="$(getconf CLK_TCK)" '/requests=/ { for (i = 1; i <= NF; ++i) if ($i ~ /^requests=/) { split($i, a, "="); n = a[2] } }
       /throughput=/ { for (i = 1; i <= NF; ++i) if ($i ~ /^throughput=/) { split($i, a, "="); t = a[2] } }
       /latency_us/ { for (i = 1; i <= NF; ++i) { if ($i ~ /^p50=/) { split($i, a, "="); p50 = a[2] }
                                                   if ($i ~ /^p99=/) { split($i, a, "="); p99 = a[2] } } }
       END { printf "| %s | %d | %d | %.2f | %.2f | %.1f µs | %.1f µs |", dir, b, t * b, p50 / 1000, p99 / 1000,
                  1e6 * ticks / hz / (n * b), 1e6 * wt / hz / (n * b)
             if (share != "") printf " %.1f µs |", share / 100 * 1e6 * ticks / hz / (n * b)
             printf "\n" }' <<<"$out"
  done
  t0=$(now)
  kill -TERM "$PID"
  wait "$PID" || true
  t1=$(now)
  "$BIN/playbookd" --data-dir "$DATA" --port "$PORT" --log-level warn >>"$WORK/playbookd.out" 2>&1 &
  PID=$!
  wait_listening
  t2=$(now)
  kill -TERM "$PID"
  wait "$PID" || true
  trap - EXIT
  echo "| $dir | SIGTERM to exit $(secs "$t0" "$t1") s; start to healthz ok $(secs "$t1" "$t2") s; data $(du -sm "$DATA" | cut -f1) MB | | | | | |"
done
