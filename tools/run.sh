#!/usr/bin/env bash
# The run command: installs what is missing, builds playbookd and playbook (Release, build/: only
# these two, the tests and benchmarks are test.sh's), and starts playbookd
# on 127.0.0.1:7700 with its data in ./playbook-data, in the background, logging to
# ./playbook-data/playbookd.log. Waits until /healthz answers.
#
#   tools/run.sh               build and start (or say it already runs)
#   tools/run.sh --foreground  build and run in this terminal (Ctrl-C stops it)
#   tools/run.sh --stop        stop the daemon started here (SIGTERM; it drains and flushes)
#
# PLAYBOOK_CONFIG=FILE passes --config FILE; PLAYBOOK_PORT and PLAYBOOK_DATA_DIR override.
#
# On the first start over a data dir (no $DATA_DIR/.sample-loaded yet), once /healthz answers,
# the sample catalog data/catalog/sample.jsonl is loaded with `build/bin/playbook import` and
# the marker is created, so later starts never reload it (deleted sample assets stay deleted).
# A data dir that already holds assets only gets the marker. PLAYBOOK_NO_SAMPLE=1 skips this;
# with API tokens configured, PLAYBOOK_TOKEN must hold a marketing or admin token for the load.
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
WS_URL="ws://127.0.0.1:$PORT/v1"

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

# Loads the sample catalog once per data dir (see the top of this file); prints one line.
load_sample() {
  [ "${PLAYBOOK_NO_SAMPLE:-}" = "1" ] && return 0
  [ -f "$SAMPLE_MARKER" ] && return 0
  local listing out
  # An existing data dir without the marker (made before the sample existed): load only into
  # an empty catalog. assets.list needs a marketing token, like the import.
  if listing=$(build/bin/playbook call --url "$WS_URL" assets.list '{"limit":1}' 2>/dev/null) &&
     ! printf '%s\n' "$listing" | grep -q '"assets": \[\]'; then
    touch "$SAMPLE_MARKER"
    echo "  sample catalog:     not loaded: the catalog already holds assets"
    return 0
  fi
  if out=$(build/bin/playbook import --url "$WS_URL" --no-progress "$SAMPLE_FILE" 2>&1); then
    touch "$SAMPLE_MARKER"
    echo "  sample catalog:     loaded $(printf '%s\n' "$out" | sed -n 's/.* \([0-9][0-9]*\) upserted.*/\1/p') assets from $SAMPLE_FILE (first start only; PLAYBOOK_NO_SAMPLE=1 skips)"
  else
    echo "  sample catalog:     loading $SAMPLE_FILE failed (retried at the next start; PLAYBOOK_NO_SAMPLE=1 skips):" >&2
    printf '%s\n' "$out" | tail -n 5 | sed 's/^/    /' >&2
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
tools/build.sh playbookd playbook

args=(--data-dir "$DATA_DIR" --port "$PORT" --bind 127.0.0.1)
[ -n "${PLAYBOOK_CONFIG:-}" ] && args=(--config "$PLAYBOOK_CONFIG" "${args[@]}")

if [ "${1:-}" = "--foreground" ]; then
  mkdir -p "$DATA_DIR"
  # The sample loads from the background once the daemon answers.
  (
    for _ in $(seq 1 100); do
      if healthz >/dev/null; then load_sample; exit 0; fi
      sleep 0.1
    done
  ) &
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
    load_sample
    echo "  try:                build/bin/playbook call server.stats"
    echo "                      build/bin/playbook export --type case_study"
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
