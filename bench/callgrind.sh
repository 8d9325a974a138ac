#!/usr/bin/env bash
# callgrind.sh — instructions per request in the worker, for one kept-alive client (or, with
# MODE=close, a new connection per request).
#
# Usage:  bench/callgrind.sh [N]        (N requests, default 20000; release build expected)
# Starts `webserver -w 1 --threads 1` on the hello app under `valgrind --tool=callgrind
# --trace-children=yes` (the worker is traced too), warms up with 500 requests, zeroes the
# worker's counters (`vgdb --pid=WORKER zero`), runs bench/keepalive_loop.py (N sequential
# requests on one connection), dumps (`vgdb ... dump`) and prints the worker's
# instructions divided by N. Instruction counts do not depend on how busy the machine is, so
# this is the number to compare commits by; wall-clock figures are bench/run.sh's.
# MODE=close runs bench/close_loop.py instead: each request on its own connection with
# `Connection: close`, BATCH (1) connections opened before their answers are read (the kernel's
# share of a close, which callgrind does not see, is for `perf stat` / `strace -c`).
# Env: PORT (18990) BIN (target/release/webserver) APP (target/release/libhello.so:app)
#      OUT_DIR (a fresh /tmp directory; the callgrind.out files stay there for callgrind_annotate)
#      EXTRA (more webserver options, e.g. "--access-log -") REQ_PATH (/) THREADS (1)
#      MODE (keepalive | close) BATCH (1, close only)
# The axum hello (sample-apps/axum-app through webserver-tower, what bench/peers.sh compares with
# axum::serve): `APP=axum bench/callgrind.sh 5000` (after `cargo build --release -p webserver
# -p axum-app`). Its peer, `axum::serve` with the same router on one tokio thread, under the same
# client and counted the same way (every thread of the process): `APP=axum-serve bench/callgrind.sh
# 5000` (the binary target/release/axum-serve; no worker process, the server itself is counted).
# A WSGI app, from its directory (the bridge imports from the current directory), e.g.:
#   cd examples/wsgi && VIRTUAL_ENV=/tmp/webserver-bench/peers-venv WEBSERVER_WSGI_APP=flaskapp:app \
#     APP=$PWD/../../target/release/libwsgi.so:app REQ_PATH=/hello ../../bench/callgrind.sh 2000
set -euo pipefail
N="${1:-20000}"
PORT="${PORT:-18990}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN:-$ROOT/target/release/webserver}"
APP="${APP:-$ROOT/target/release/libhello.so:app}"
[[ "$APP" == axum ]] && APP="$ROOT/target/release/libaxum_app.so:app"
OUT_DIR="${OUT_DIR:-$(mktemp -d /tmp/webserver-callgrind.XXXXXX)}"
mkdir -p "$OUT_DIR"
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 2; }
# shellcheck disable=SC2086
if [[ "$APP" == axum-serve ]]; then
  TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --callgrind-out-file="$OUT_DIR/callgrind.out.%p" \
    "$ROOT/target/release/axum-serve" "127.0.0.1:$PORT" >"$OUT_DIR/server.log" 2>&1 &
else
  valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$OUT_DIR/callgrind.out.%p" \
    "$BIN" -b "127.0.0.1:$PORT" -w 1 --threads "${THREADS:-1}" ${EXTRA:-} "$APP" >"$OUT_DIR/server.log" 2>&1 &
fi
MASTER=$!
trap 'kill -TERM "$MASTER" 2>/dev/null; wait "$MASTER" 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT${REQ_PATH:-/}" && break
  sleep 0.2
done
WORKER=$MASTER
[[ "$APP" == axum-serve ]] || WORKER=$(pgrep -P "$MASTER" | head -1)
[[ -n "$WORKER" ]] || { echo "callgrind.sh: no worker under master $MASTER" >&2; exit 1; }
case "${MODE:-keepalive}" in
  keepalive) load() { python3 "$ROOT/bench/keepalive_loop.py" "$PORT" "$1" "${REQ_PATH:-/}"; } ;;
  close) load() { python3 "$ROOT/bench/close_loop.py" "$PORT" "$1" "${REQ_PATH:-/}" "${BATCH:-1}"; } ;;
  *) echo "callgrind.sh: MODE is keepalive or close, not $MODE" >&2; exit 2 ;;
esac
load 500
# vgdb, not callgrind_control: the worker sets its process title, which callgrind_control
# does not recognise as a valgrind process.
vgdb --pid="$WORKER" zero >/dev/null
load "$N"
vgdb --pid="$WORKER" dump >/dev/null
cat /proc/"$WORKER"/maps >"$OUT_DIR/maps" 2>/dev/null || true
sleep 1
DUMP=$(ls -t "$OUT_DIR"/callgrind.out."$WORKER"* | grep -v "callgrind.out.$WORKER\$" | head -1)
[[ -n "$DUMP" ]] || { echo "callgrind.sh: the worker wrote no dump (see $OUT_DIR/server.log)" >&2; exit 1; }
IR=$(awk '/^summary:|^totals:/ {print $2; exit}' "$DUMP")
echo "worker $WORKER (${MODE:-keepalive}): $IR instructions for $N requests: $(( IR / N )) per request ($DUMP)"
# The worker loads the app through /proc/self/fd, which valgrind cannot read symbols from: name
# the app's functions from the real file (DUMP.named), and list the costliest (DUMP.top).
if [[ "$APP" == *.so:* ]] && python3 "$ROOT/bench/callgrind_names.py" "$DUMP" "$OUT_DIR/maps" "${APP%:*}" "$N" 60 >"$DUMP.top"; then
  echo "  by function: $DUMP.top; named dump: $DUMP.named"
fi
