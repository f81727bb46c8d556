#!/usr/bin/env bash
# The run command: installs what is missing, builds (Release, build/), and starts playbookd
# on 127.0.0.1:7700 with its data in ./playbook-data, in the background, logging to
# ./playbook-data/playbookd.log. Waits until /healthz answers.
#
#   tools/run.sh               build and start (or say it already runs)
#   tools/run.sh --foreground  build and run in this terminal (Ctrl-C stops it)
#   tools/run.sh --stop        stop the daemon started here (SIGTERM; it drains and flushes)
#
# PLAYBOOK_CONFIG=FILE passes --config FILE; PLAYBOOK_PORT and PLAYBOOK_DATA_DIR override.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PLAYBOOK_PORT:-7700}
DATA_DIR=${PLAYBOOK_DATA_DIR:-playbook-data}
PID_FILE="$DATA_DIR/playbookd.pid"
LOG_FILE="$DATA_DIR/playbookd.log"

running_pid() {
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid=$(cat "$PID_FILE")
  kill -0 "$pid" 2>/dev/null && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "playbookd" ] && echo "$pid"
}

# GET /healthz without curl (a fresh Debian has none): bash's /dev/tcp.
healthz() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" || exit 1
    printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    reply=$(timeout 2 cat <&3 || true)
    [[ "$reply" == "HTTP/1.1 200"* ]] || exit 1
    echo "${reply##*$'\r\n\r\n'}"
  ) 2>/dev/null
}

if [ "${1:-}" = "--stop" ]; then
  if pid=$(running_pid); then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$PID_FILE"
    echo "playbookd stopped"
  else
    echo "playbookd is not running (no live pid in $PID_FILE)"
  fi
  exit 0
fi

tools/build.sh

args=(--data-dir "$DATA_DIR" --port "$PORT" --bind 127.0.0.1)
[ -n "${PLAYBOOK_CONFIG:-}" ] && args=(--config "$PLAYBOOK_CONFIG" "${args[@]}")

if [ "${1:-}" = "--foreground" ]; then
  exec build/bin/playbookd "${args[@]}"
fi

if pid=$(running_pid); then
  echo "playbookd already runs (pid $pid) on 127.0.0.1:$PORT; tools/run.sh --stop stops it"
  exit 0
fi

mkdir -p "$DATA_DIR"
nohup build/bin/playbookd "${args[@]}" >>"$LOG_FILE" 2>&1 &
pid=$!
echo "$pid" >"$PID_FILE"
for _ in $(seq 1 100); do
  if body=$(healthz); then
    echo "playbookd $(build/bin/playbookd --version | cut -d' ' -f2) is serving (pid $pid)"
    echo "  WebSocket JSON-RPC: ws://127.0.0.1:$PORT/v1"
    echo "  health:             http://127.0.0.1:$PORT/healthz  $body"
    echo "  metrics:            http://127.0.0.1:$PORT/metrics"
    echo "  data:               $DATA_DIR   log: $LOG_FILE"
    echo "  try:                build/bin/playbook call server.stats"
    echo "  stop:               tools/run.sh --stop"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "playbookd exited at start; the end of $LOG_FILE says why:" >&2
    tail -n 20 "$LOG_FILE" >&2
    rm -f "$PID_FILE"
    exit 1
  fi
  sleep 0.1
done
echo "playbookd did not answer /healthz within 10 s; see $LOG_FILE" >&2
exit 1
