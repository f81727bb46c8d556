#!/usr/bin/env bash
# Two builds side by side on the same catalog, the loads alternated between them call for call, so
# that the load of a shared machine hits both alike. For each round, filter (stage, narrow) and
# client count: assets.search then recommend on each daemon, with the daemon's CPU time per call
# (utime + stime of the process over the load, /proc/PID/stat).
#
#   tools/bench_ab.sh BEFORE_BIN AFTER_BIN     each holds playbookd, playbook (the load client is
#                                              AFTER_BIN's playbook-loadgen)
# Environment: WORK (/tmp/pb-hot: the inputs tools/bench_hot.sh generated there, ASSETS of them),
# ASSETS (10000), SECONDS_EACH (3), CONNS ("1 4"), ROUNDS (3), PORTS ("7811 7812"),
# DATA_FROM (a data dir, e.g. the 100,000-asset one tools/bench_hot.sh leaves in its WORK: each
# daemon starts on a fresh copy of it, cp -a into WORK, instead of importing; never written to).
set -u
BEFORE=$(cd "$1" && pwd)
AFTER=$(cd "$2" && pwd)
W=${WORK:-/tmp/pb-hot}
ASSETS=${ASSETS:-10000}
read -r P1 P2 <<<"${PORTS:-7811 7812}"
LG=$AFTER/playbook-loadgen
declare -A BIN=([before]=$BEFORE [after]=$AFTER) PORT=([before]=$P1 [after]=$P2) PID
for v in before after; do
  rm -rf "$W/data-$v"
  [ -n "${DATA_FROM:-}" ] && cp -a "$DATA_FROM" "$W/data-$v"
  "${BIN[$v]}/playbookd" --data-dir "$W/data-$v" --port "${PORT[$v]}" --log-level warn >>"$W/ab-$v.out" 2>&1 &
  PID[$v]=$!
done
trap 'for v in before after; do kill -TERM ${PID[$v]} 2>/dev/null; wait ${PID[$v]} 2>/dev/null; done' EXIT
for v in before after; do
  until "${BIN[$v]}/playbook" call --url "ws://127.0.0.1:${PORT[$v]}/v1" index.status '{}' >/dev/null 2>&1; do sleep 0.5; done
  [ -n "${DATA_FROM:-}" ] && continue
  "${BIN[$v]}/playbook" import --url "ws://127.0.0.1:${PORT[$v]}/v1" --no-progress "$W/assets-$ASSETS.jsonl" >/dev/null 2>&1
done
sleep 5  # the graphs built (or loaded)
cpu() { awk '{ print $14 + $15 }' "/proc/${PID[$1]}/stat"; }  # clock ticks
load() {
  "$LG" --url "ws://127.0.0.1:${PORT[$1]}/v1" --connections "$3" --seconds "${SECONDS_EACH:-3}" --method "$2" \
    --params-file "$4" 2>&1 | tr '\n' ' '
}
for v in before after; do load $v assets.search 2 "$W/search-stage.txt" >/dev/null; load $v recommend 2 "$W/recommend-stage.txt" >/dev/null; done
hz=$(getconf CLK_TCK)
field() { grep -o "$1=[0-9]*" <<<"$2" | head -1 | cut -d= -f2; }
echo "| round | build | filter | clients | search req/s | search us CPU/call | recommend req/s | recommend us CPU/call | recommend p50 / p99 ms | recommend / search |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for round in $(seq 1 "${ROUNDS:-3}"); do
  for filter in stage narrow; do
    for c in ${CONNS:-1 4}; do
      for v in before after; do
        t0=$(cpu $v); s=$(load $v assets.search "$c" "$W/search-$filter.txt"); t1=$(cpu $v)
        r=$(load $v recommend "$c" "$W/recommend-$filter.txt"); t2=$(cpu $v)
        awk -v round="$round" -v v="$v" -v f="$filter" -v c="$c" -v hz="$hz" \
          -v sr="$(field throughput "$s")" -v sn="$(field requests "$s")" -v st=$((t1 - t0)) \
          -v rr="$(field throughput "$r")" -v rn="$(field requests "$r")" -v rt=$((t2 - t1)) \
          -v p50="$(field p50 "$r")" -v p99="$(field p99 "$r")" 'BEGIN {
            printf "| %s | %s | %s | %s | %d | %.0f | %d | %.0f | %.2f / %.2f | %.0f%% |\n", round, v, f, c,
              sr, st * 1e6 / hz / sn, rr, rt * 1e6 / hz / rn, p50 / 1000, p99 / 1000, 100 * rr / sr }'
      done
    done
  done
done
