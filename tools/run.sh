#!/usr/bin/env bash
# The run command: installs what is missing, builds playbookd (Release, build/: the tests and
# benchmarks are test.sh's), starts it on 127.0.0.1:7700 with its data in ./playbook-data, in the
# background, logging to ./playbook-data/playbookd.log, and waits until /healthz answers: from then
# on it serves, the sample catalog loaded. Then it builds the CLI, build/bin/playbook (what the
# README's lines use), while the daemon already serves, and returns once it is linked.
#
#   tools/run.sh               build and start (or say it already runs)
#   tools/run.sh --foreground  build both and run in this terminal (Ctrl-C stops it)
#   tools/run.sh --stop        stop the daemon started here (SIGTERM; it drains and flushes)
#
# PLAYBOOK_CONFIG=FILE passes --config FILE; PLAYBOOK_PORT and PLAYBOOK_DATA_DIR override.
#
# The sample catalog: playbookd --load-sample data/catalog/sample.jsonl. On the first start over
# a data dir (no $DATA_DIR/.sample-loaded yet) the daemon itself imports it into an empty catalog
# before it serves (a catalog that already holds assets is left alone) and writes the marker, so
# later starts never reload it (deleted sample assets stay deleted). PLAYBOOK_NO_SAMPLE=1 skips it.
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

SAMPLE_FILE=data/catalog/sample.jsonl
SAMPLE_MARKER="$DATA_DIR/.sample-loaded"

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

# The daemon's word on the sample catalog (see the top of this file), one line.
sample_note() {
  [ "${PLAYBOOK_NO_SAMPLE:-}" = "1" ] && return 0
  if [ -f "$SAMPLE_MARKER" ]; then
    echo "  sample catalog:     $(cat "$SAMPLE_MARKER") (first start only; PLAYBOOK_NO_SAMPLE=1 skips)"
  else
    echo "  sample catalog:     not loaded, retried at the next start; $LOG_FILE says why:" >&2
    grep 'sample catalog' "$LOG_FILE" | tail -n 3 | sed 's/^/    /' >&2 || true
  fi
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

tools/install-deps.sh

args=(--data-dir "$DATA_DIR" --port "$PORT" --bind 127.0.0.1)
[ -n "${PLAYBOOK_CONFIG:-}" ] && args=(--config "$PLAYBOOK_CONFIG" "${args[@]}")
[ "${PLAYBOOK_NO_SAMPLE:-}" = "1" ] || args+=(--load-sample "$SAMPLE_FILE")

if [ "${1:-}" = "--foreground" ]; then
  tools/build.sh playbookd playbook
  mkdir -p "$DATA_DIR"
  exec build/bin/playbookd "${args[@]}"
fi

# The daemon first: it serves while the CLI compiles.
tools/build.sh playbookd

if pid=$(running_pid); then
  echo "playbookd already runs (pid $pid) on 127.0.0.1:$PORT; tools/run.sh --stop stops it"
else
  mkdir -p "$DATA_DIR"
  nohup build/bin/playbookd "${args[@]}" >>"$LOG_FILE" 2>&1 &
  pid=$!
  echo "$pid" >"$PID_FILE"
  for i in $(seq 1 301); do
    if body=$(healthz); then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "playbookd exited at start; the end of $LOG_FILE says why:" >&2
      tail -n 20 "$LOG_FILE" >&2
      rm -f "$PID_FILE"
      exit 1
    fi
    if [ "$i" = 301 ]; then
      echo "playbookd did not answer /healthz within 30 s; see $LOG_FILE" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "playbookd $(build/bin/playbookd --version | cut -d' ' -f2) is serving (pid $pid), $SECONDS s after tools/run.sh started"
  echo "  WebSocket JSON-RPC: ws://127.0.0.1:$PORT/v1"
  echo "  health:             http://127.0.0.1:$PORT/healthz  $body"
  echo "  metrics:            http://127.0.0.1:$PORT/metrics"
  echo "  data:               $DATA_DIR   log: $LOG_FILE"
  sample_note
fi

echo "building the CLI, build/bin/playbook, while playbookd serves"
tools/build.sh playbook
echo "  try:                build/bin/playbook call server.stats"
echo "                      build/bin/playbook export --type case_study"
echo "  stop:               tools/run.sh --stop"
