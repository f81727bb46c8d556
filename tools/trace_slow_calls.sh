#!/usr/bin/env bash
# Where recommend's slow calls at one client go: a daemon on a fresh copy of a data dir, recommend
# (stage filter) from one connection for SECS seconds with playbook-loadgen --trace (each call's send
# and answer time), and perf's sched_switch / sched_waking of the whole machine on the same clock
# (perf -k mono), then tools/slow_calls.py over both.
#   tools/trace_slow_calls.sh BIN LABEL [SECS=20]
# BIN holds playbookd, playbook and playbook-loadgen (thread names and --trace: from 1cebc32 on).
# DATA_FROM (default /tmp/pb-hot100/data, a data dir tools/bench_hot.sh left; copied, never written),
# PARAMS (default /tmp/pb-hot100/recommend-stage.txt), WORK (default /tmp/pb-trace) receives
# sched-LABEL.txt, calls-LABEL.txt and slow-LABEL.txt; PORT (7991); NICE (a nice value for the daemon
# and the client, e.g. -10, to keep a busy machine's other processes off them). Needs root (perf -a).
set -u
BIN=$1; L=$2; S=${3:-20}; PORT=${PORT:-7991}; W=${WORK:-/tmp/pb-trace}
FROM=${DATA_FROM:-/tmp/pb-hot100/data}; PF=${PARAMS:-/tmp/pb-hot100/recommend-stage.txt}
D=$W/data-$L
mkdir -p "$W"
rm -rf "$D"; cp -a "$FROM" "$D"
${NICE:+nice -n $NICE} "$BIN/playbookd" --data-dir "$D" --port "$PORT" --log-level warn > "$W/d-$L.out" 2>&1 &
PID=$!
URL=ws://127.0.0.1:$PORT/v1
until "$BIN/playbook" call --url $URL index.status '{}' 2>/dev/null | grep -q '"graph": *"ready"'; do sleep 0.5; done
"$BIN/playbook-loadgen" --url $URL --connections 2 --seconds 2 --method recommend --params-file "$PF" >/dev/null 2>&1
echo "load average before: $(cat /proc/loadavg)" > "$W/load-$L.txt"
perf record -e sched:sched_switch -e sched:sched_waking -k mono -a -o "$W/sched-$L.data" -- sleep $((S + 2)) \
  > /dev/null 2>&1 &
PP=$!
sleep 1
${NICE:+nice -n $NICE} "$BIN/playbook-loadgen" --url $URL --connections 1 --seconds "$S" --method recommend \
  --params-file "$PF" --trace "$W/calls-$L.txt" 2>&1 | tr '\n' ' ' >> "$W/load-$L.txt"
for t in /proc/$PID/task/*; do echo "$(basename "$t") $(cat "$t/comm") $(awk '{print $14+$15}' "$t/stat")"; done \
  > "$W/threads-$L.txt"
wait $PP
kill -TERM $PID; wait $PID
rm -rf "$D"
perf script --ns -i "$W/sched-$L.data" -F comm,tid,cpu,time,event,trace 2>/dev/null > "$W/sched-$L.txt"
python3 "$(dirname "$0")/slow_calls.py" "$W/sched-$L.txt" "$W/calls-$L.txt" "$W/threads-$L.txt" 3000 > "$W/slow-$L.txt"
cat "$W/load-$L.txt"; echo; cat "$W/slow-$L.txt"
