#!/usr/bin/env bash
# peers.sh — issue 18's side-by-side run: webserver beside its peers, in one run, with ratios.
#
# Usage: bench/peers.sh          (QUICK=1: one round of 2 s, 2,000 connections at once)
#
# Pairs (each server one process where it can be, pinned to CPU $SERVER_CPUS; wrk and the
# clients on CPU $WRK_CPUS; every server started afresh per round, rounds interleaved with the
# order rotated, medians of rounds: bench/scenarios.sh):
#   hello        webserver -w 1 --threads 1 hello:app      vs hyper (bench/hyper-hello, tokio,
#                                                             one thread per CPU of its affinity: 1)
#   axum hello   webserver -w 1 --threads 1 axum_app:app    vs axum::serve with the same router
#                                                             (sample-apps/axum-app's axum-serve)
#   Flask hello  webserver -w 1 --threads 4 wsgi:app        vs granian --interface wsgi
#                  flaskapp:app (GET /hello)                  --workers 1 --blocking-threads 4
#   bare WSGI    the same with wsgiapp:app (GET /)           vs the same granian
# Scenarios: keep-alive (wrk -c50) and `Connection: close` (a new connection per request). Per
# pair: requests/s, p99, server CPU µs per request and requests per server CPU-second (the
# figure to compare with `Connection: close`, where wrk is the bottleneck), as ratios
# webserver / peer, against issue 18's targets (bench/peers_summary.py). Then 10,000 keep-alive
# connections opened at once, one request each, then idle (bench/idle.sh): bytes per
# connection, and whether the memory comes back after they close.
#
# Installs what is missing: wrk (apt, bench/setup.sh), hyper-hello (crates.io, --locked, into
# $BENCH_WORK/target), granian and the WSGI frameworks pinned (PyPI, into $BENCH_WORK/peers-venv:
# examples/wsgi/requirements.txt + bench/peers-requirements.txt), release builds of webserver,
# libhello.so, libaxum_app.so + axum-serve and libwsgi.so.
#
# Env: QUICK=1, SKIP_BUILD=1, ROUNDS (3), DURATION (5), WARMUP (2), IDLE_CONNS (10000),
#      WSGI_THREADS (4), ONLY (space-separated subset of: hello axum flask wsgi idle), BENCH_WORK.
# Output: the table on stdout and in $BENCH_WORK/peers-<date>/table.md; raw data beside it.
# Only 127.0.0.1 is contacted; every run is bounded in time; servers are stopped by session id.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export BENCH_WORK="${BENCH_WORK:-/tmp/webserver-bench}"
if [[ "${QUICK:-0}" == 1 ]]; then
  export ROUNDS="${ROUNDS:-1}" DURATION="${DURATION:-2}" WARMUP="${WARMUP:-1}" IDLE_CONNS="${IDLE_CONNS:-2000}"
else
  export ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-5}" WARMUP="${WARMUP:-2}" IDLE_CONNS="${IDLE_CONNS:-10000}"
fi
ONLY="${ONLY:-hello axum flask wsgi idle}"
THREADS="${WSGI_THREADS:-4}"
RUN="$BENCH_WORK/peers-$(date +%Y%m%d-%H%M%S)"
VENV="$BENCH_WORK/peers-venv"
APPS="$ROOT/examples/wsgi"
mkdir -p "$RUN"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
want() { [[ " $ONLY " == *" $1 "* ]]; }

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  echo "== cargo build --release (webserver, hello, axum-app + axum-serve, wsgi)"
  cargo build --release -p webserver -p hello -p axum-app -p wsgi
fi
echo "== bench/setup.sh (wrk, hyper-hello)"
"$ROOT/bench/setup.sh"
if want flask || want wsgi; then
  echo "== virtualenv $VENV (granian + the article's frameworks, pinned)"
  reqs="$(cat "$APPS/requirements.txt" "$ROOT/bench/peers-requirements.txt")"
  if [[ "$(cat "$VENV/installed.txt" 2>/dev/null)" != "$reqs" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --disable-pip-version-check -q \
      -r "$APPS/requirements.txt" -r "$ROOT/bench/peers-requirements.txt"
    printf '%s' "$reqs" >"$VENV/installed.txt"
  fi
fi

WS="$ROOT/target/release/webserver"
HYPER="$BENCH_WORK/target/release/hyper-hello"
AXUM_SERVE="$ROOT/target/release/axum-serve"
{
  echo "date: $(date -Is)"
  echo "machine: nproc=$(nproc) cpu='$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')' kernel=$(uname -r)"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') (dirty files: $(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l))"
  echo "command: ${QUICK:+QUICK=$QUICK }bench/peers.sh  (ROUNDS=$ROUNDS DURATION=${DURATION}s IDLE_CONNS=$IDLE_CONNS ONLY='$ONLY')"
  echo "granian: $("$VENV/bin/granian" --version 2>/dev/null || echo 'not installed')"
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$RUN/meta.txt"

# One scenarios.sh run per pair: its two servers interleave round by round.
pair() {
  local dir=$1 port=$2; shift 2
  echo "== $dir: $*" | cut -c1-200
  OUT_DIR="$RUN/$dir" BASE_PORT=$port "$ROOT/bench/scenarios.sh" "$@" | tee "$RUN/$dir.log" \
    || echo "$dir: scenarios.sh failed (see above)"
}
ka="keepalive:/,close:/"
if want hello; then
  pair hello 18600 \
    "webserver|webserver|$ka|$WS -w 1 --threads 1 --bind 127.0.0.1:\$PORT hello:app" \
    "hyper|peer|$ka|$HYPER \$PORT"
fi
if want axum; then
  pair axum 18610 \
    "webserver-axum|webserver|$ka|$WS -w 1 --threads 1 --bind 127.0.0.1:\$PORT axum_app:app" \
    "axum-serve|peer|$ka|exec $AXUM_SERVE 127.0.0.1:\$PORT"
fi
ws_py="cd $APPS && VIRTUAL_ENV=$VENV WEBSERVER_WSGI_APP"
granian="cd $APPS && exec $VENV/bin/granian --interface wsgi --host 127.0.0.1 --port \$PORT --workers 1 --blocking-threads $THREADS --http 1 --no-ws --log-level warning"
if want flask; then
  pair flask 18620 \
    "webserver-flask|webserver|keepalive:/hello,close:/hello|$ws_py=flaskapp:app exec $WS -w 1 --threads $THREADS --bind 127.0.0.1:\$PORT wsgi:app" \
    "granian-flask|peer|keepalive:/hello,close:/hello|$granian flaskapp:app"
fi
if want wsgi; then
  pair wsgi 18630 \
    "webserver-wsgi|webserver|$ka|$ws_py=wsgiapp:app exec $WS -w 1 --threads $THREADS --bind 127.0.0.1:\$PORT wsgi:app" \
    "granian-wsgi|peer|$ka|$granian wsgiapp:app"
fi
if want idle; then
  echo "== idle.sh: $IDLE_CONNS keep-alive connections opened at once"
  OUT_DIR="$RUN/idle" BASE_PORT=18650 IDLE_OPEN=burst "$ROOT/bench/idle.sh" \
    "webserver|webserver|$WS -w 1 --keep-alive 120 --bind 127.0.0.1:\$PORT hello:app" \
    "hyper|hyper|$HYPER \$PORT" \
    "axum-serve|axum-serve|exec $AXUM_SERVE 127.0.0.1:\$PORT" | tee "$RUN/idle.log" || echo "idle.sh failed (see above)"
fi

echo
{
  cat "$RUN/meta.txt"
  echo
  python3 "$ROOT/bench/peers_summary.py" "$RUN"
} | tee "$RUN/table.md"
echo "raw data: $RUN"
