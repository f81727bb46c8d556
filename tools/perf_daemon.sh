#!/usr/bin/env bash
# Where a daemon's CPU goes under one method's load: perf on playbookd, stage filter, 4 clients.
#   tools/perf_daemon.sh BIN LABEL search|recommend [PORT] [PERF=1]
# BIN holds playbookd, playbook and playbook-loadgen. DATA_FROM (default /tmp/pb-hot100/data, a data
# dir tools/bench_hot.sh left) is copied afresh to tmpfs per run and never written. WORK (default
# /tmp/pb-perf) receives perf-LABEL-METHOD.data and load-LABEL-METHOD.txt (the load client's figures
# and the daemon's CPU ticks over the load). Inputs in WORK: search-stage.txt, and rec-stage.txt
# (bench_hot's recommend-stage.txt with its leads renamed so that none has history).
# Then: perf script -i WORK/perf-LABEL-METHOD.data > perf-LABEL-METHOD.txt and
#   python3 tools/perf_classify.py perf-A.txt CALLS TICKS perf-B.txt CALLS TICKS
# (CALLS: the calls answered during the load, from load-*.txt; TICKS: its cpu_ticks).
set -u
BIN=$1; L=$2; M=$3; PORT=${4:-7891}; PERF=${5:-1}
W=${WORK:-/tmp/pb-perf}; FROM=${DATA_FROM:-/tmp/pb-hot100/data}; D=/dev/shm/pb-perf-data-$L-$M
mkdir -p "$W"
rm -rf "$D"; cp -a "$FROM" "$D"
"$BIN/playbookd" --data-dir "$D" --port "$PORT" --log-level warn > "$W/d-$L-$M.out" 2>&1 &
PID=$!
until "$BIN/playbook" call --url ws://127.0.0.1:$PORT/v1 index.status '{}' 2>/dev/null | grep -q '"graph": *"ready"'; do sleep 0.5; done
LG=$BIN/playbook-loadgen
if [ "$M" = search ]; then MM=assets.search; PF=$W/search-stage.txt; else MM=recommend; PF=$W/rec-stage.txt; fi
"$LG" --url ws://127.0.0.1:$PORT/v1 --connections 4 --seconds 2 --method $MM --params-file "$PF" >/dev/null 2>&1
if [ "$PERF" = 1 ]; then
  perf record -F 250 --call-graph dwarf,16384 -o "$W/perf-$L-$M.data" -p $PID -- sleep 7 > /dev/null 2>&1 &
  PP=$!
fi
t0=$(awk '{print $14+$15}' /proc/$PID/stat)
"$LG" --url ws://127.0.0.1:$PORT/v1 --connections 4 --seconds 6 --method $MM --params-file "$PF" 2>&1 | tr '\n' ' ' > "$W/load-$L-$M.txt"
t1=$(awk '{print $14+$15}' /proc/$PID/stat)
echo " cpu_ticks=$((t1-t0))" >> "$W/load-$L-$M.txt"
if [ "$PERF" = 1 ]; then wait $PP; fi
kill -TERM $PID; wait $PID
rm -rf "$D"
cat "$W/load-$L-$M.txt"
