#!/usr/bin/env bash
# wsgi.sh — the WSGI bridge beside gunicorn (sync and gthread) and uWSGI (--http-socket), on the
# article's bare WSGI hello (examples/wsgi/wsgiapp.py, GET /) and its Flask hello (flaskapp.py,
# GET /hello), with bench/scenarios.sh's method (server pinned to one CPU, wrk to the other,
# rounds interleaved, medians).
#
# Usage: bench/wsgi.sh          (QUICK=1: one round of 2 s; ROUNDS, DURATION as scenarios.sh)
#
# Every server runs ONE process with $THREADS (4) threads where it has threads, the same Python
# (the one libwsgi.so embeds) and the same virtualenv ($BENCH_WORK/wsgi-venv: the article's
# frameworks plus bench/wsgi-requirements.txt):
#   webserver          -w 1 --threads $THREADS  wsgi:app          (libwsgi.so, release build)
#   gunicorn-sync      -w 1 (sync worker: one request at a time, closes kept-alive connections)
#   gunicorn-gthread   -w 1 -k gthread --threads $THREADS
#   uwsgi              --http-socket --processes 1 --threads $THREADS --disable-logging
# Scenarios: keepalive and close (bench/scenarios.sh). Prints requests/s and p99 per server, the
# ratio webserver / best peer and issue 11's targets (bench/wsgi_summary.py). Then, per app and
# server, the turn order (bench/wsgi_order.py, $ORDER_SECONDS s on 50 kept-alive connections): how
# many responses to other connections a request waits for (fair: about 49). Unlike latency, that
# count does not change when other processes take CPU time from the server, so it says on a busy
# machine what the p99 will do on a quiet one. Only 127.0.0.1 is contacted; every run is bounded
# in time. Do not trust the latencies while other heavy work (builds, tests) shares the machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_WORK="${BENCH_WORK:-/tmp/webserver-bench}"
THREADS="${THREADS:-4}"
ORDER_SECONDS="${ORDER_SECONDS:-3}"
VENV="$BENCH_WORK/wsgi-venv"
APPS="$ROOT/examples/wsgi"
if [[ "${QUICK:-0}" == 1 ]]; then export ROUNDS=1 DURATION=2; fi

step() { printf '\n==> %s\n' "$*"; }

step "release build (webserver + libwsgi.so)"
(cd "$ROOT" && cargo build --release -p webserver -p wsgi)
"$ROOT/bench/setup.sh" >/dev/null   # wrk (apt) when missing

step "virtualenv $VENV (frameworks + gunicorn + uWSGI, pinned)"
want="$(cat "$APPS/requirements.txt" "$ROOT/bench/wsgi-requirements.txt")"
if [[ "$(cat "$VENV/installed.txt" 2>/dev/null)" != "$want" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check -q \
    -r "$APPS/requirements.txt" -r "$ROOT/bench/wsgi-requirements.txt"
  printf '%s' "$want" >"$VENV/installed.txt"
fi

ws="cd $APPS && VIRTUAL_ENV=$VENV WEBSERVER_WSGI_APP"
ws_opts="--bind 127.0.0.1:\$PORT -w 1 --threads $THREADS"
gunicorn="cd $APPS && exec $VENV/bin/gunicorn --bind 127.0.0.1:\$PORT -w 1"
uwsgi="cd $APPS && exec $VENV/bin/uwsgi --http-socket 127.0.0.1:\$PORT --processes 1 --threads $THREADS --disable-logging --die-on-term"
OUT_DIR="$BENCH_WORK/wsgi-$(date +%Y%m%d-%H%M%S)"
export OUT_DIR
SERVER_CPUS="${SERVER_CPUS:-1}" WRK_CPUS="${WRK_CPUS:-0}" START_TIMEOUT="${START_TIMEOUT:-20}"
mkdir -p "$OUT_DIR"
# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh"

step "servers (one process each, pinned to CPU $SERVER_CPUS; client on CPU $WRK_CPUS)"
cat <<EOF
  webserver          1 worker (-w 1; its master serves nothing), $THREADS serving threads (--threads $THREADS)
  gunicorn-sync      1 worker (-w 1; its arbiter serves nothing), 1 request at a time
  gunicorn-gthread   1 worker (-w 1; its arbiter serves nothing), $THREADS threads (-k gthread --threads $THREADS)
  uwsgi              1 process (--processes 1), $THREADS threads (--threads $THREADS), --http-socket
EOF

# order NAME CMD PORT PATH: bench/wsgi_order.py against one fresh start of a server.
order() {
  local name=$1 cmd=$2 port=$3 path=$4
  if start_server "$name" "$cmd" "$port" "$OUT_DIR/order-$name.log"; then
    printf '  %-18s ' "$name"
    taskset -c "$WRK_CPUS" python3 "$ROOT/bench/wsgi_order.py" "$port" "$path" 50 "$ORDER_SECONDS"
    stop_server || true   # its status is the server's exit status (uWSGI: 30 on TERM)
  fi
}

for app in wsgiapp:app:/ flaskapp:app:/hello; do
  module=${app%%:*}; rest=${app#*:}; callable=${rest%%:*}; path=${rest#*:}
  target="$module:$callable"
  step "$target (GET $path)"
  OUT_DIR="$OUT_DIR/$module" "$ROOT/bench/scenarios.sh" \
    "webserver|webserver|keepalive:$path,close:$path|$ws=$target exec $ROOT/target/release/webserver $ws_opts wsgi:app" \
    "gunicorn-sync|gunicorn-sync|keepalive:$path,close:$path|$gunicorn $target" \
    "gunicorn-gthread|gunicorn-gthread|keepalive:$path,close:$path|$gunicorn -k gthread --threads $THREADS $target" \
    "uwsgi|uwsgi|keepalive:$path,close:$path|$uwsgi --module $target"
  # Median requests/s and p99 per (server, scenario), ratios and issue 11's targets.
  python3 "$ROOT/bench/wsgi_summary.py" "$OUT_DIR/$module/scenarios.tsv" "$([[ $module == flaskapp ]] && echo flask || echo bare)"
  echo "turn order ($target, 50 connections; responses to others while a request waits, fair: about 49):"
  order webserver "$ws=$target exec $ROOT/target/release/webserver $ws_opts wsgi:app" 18390 "$path"
  order gunicorn-gthread "$gunicorn -k gthread --threads $THREADS $target" 18391 "$path"
  order uwsgi "$uwsgi --module $target" 18392 "$path"
done
echo "raw data: $OUT_DIR"
