#!/usr/bin/env bash
# asgi.sh — the ASGI bridge beside uvicorn (uvloop + httptools) and granian (--interface asgi), on
# a bare ASGI hello (examples/asgi/hello.py, GET /) and a FastAPI hello (examples/asgi/main.py,
# GET /), keep-alive and close, with bench/scenarios.sh's method (server pinned to one CPU, wrk
# to the other, rounds interleaved, medians); then 10,000 requests at once that each
# `await asyncio.sleep(1)` on each server (bench/asgi_sleep10k.py); then WebSocket echo of
# 64-byte messages over $WS_CONNS connections, one in flight each (examples/asgi/hello.py's
# `hello:echo`, loaded by bench/ws-peer as bench/ws_echo.sh does), webserver against uvicorn
# (its `websockets` implementation; granian runs with --no-ws here).
#
# Usage: bench/asgi.sh          (QUICK=1: one round of 2 s and 1,000 sleepers; ROUNDS (5 here: the
#                                p99 verdict is a median of per-round ratios), DURATION as
#                                scenarios.sh; SLEEPERS (10000); WS_CONNS (50))
#
# Every server runs ONE worker process on ONE event loop (uvloop), the same Python (the one
# libasgi.so embeds) and the same virtualenv ($BENCH_WORK/asgi-venv: examples/asgi's frameworks
# plus bench/asgi-requirements.txt, all pinned):
#   webserver   -w 1 --threads $THREADS asgi:app TARGET --loop uvloop   (release build)
#   uvicorn     --workers 1 --loop uvloop --http httptools --no-access-log
#   granian     --interface asgi --workers 1 --loop uvloop --no-ws (no access log by default)
# Prints requests/s and p99 per server and the ratio webserver / the better peer, with issue 20's
# target (>= 1.0x the better of uvicorn and granian, p99 no worse: the median over rounds of
# webserver's p99 over that peer's in the same round; bench/asgi_summary.py).
# Only 127.0.0.1 is contacted; every run is bounded in time. Do not trust the numbers while other
# heavy work (builds, tests) shares the machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_WORK="${BENCH_WORK:-/tmp/webserver-bench}"
THREADS="${THREADS:-2}"
SLEEPERS="${SLEEPERS:-10000}"
WS_CONNS="${WS_CONNS:-50}"
VENV="$BENCH_WORK/asgi-venv"
APPS="$ROOT/examples/asgi"
export ROUNDS="${ROUNDS:-5}"
if [[ "${QUICK:-0}" == 1 ]]; then export ROUNDS=1 DURATION=2; SLEEPERS=1000; fi

step() { printf '\n==> %s\n' "$*"; }

step "release build (webserver + libasgi.so)"
(cd "$ROOT" && cargo build --release -p webserver -p asgi)
command -v wrk >/dev/null || "$ROOT/bench/setup.sh" >/dev/null   # wrk (apt) when missing

step "virtualenv $VENV (frameworks + uvicorn + granian, pinned)"
want="$(cat "$APPS/requirements.txt" "$ROOT/bench/asgi-requirements.txt")"
if [[ "$(cat "$VENV/installed.txt" 2>/dev/null)" != "$want" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check -q \
    -r "$APPS/requirements.txt" -r "$ROOT/bench/asgi-requirements.txt"
  printf '%s' "$want" >"$VENV/installed.txt"
fi

ws="cd $APPS && exec $ROOT/target/release/webserver --bind 127.0.0.1:\$PORT -w 1 --threads $THREADS $ROOT/target/release/libasgi.so:app"
ws_args="--venv $VENV --loop uvloop"
uvicorn="cd $APPS && exec $VENV/bin/uvicorn --host 127.0.0.1 --port \$PORT --workers 1 --loop uvloop --http httptools --no-access-log --log-level warning"
granian="cd $APPS && exec $VENV/bin/granian --interface asgi --host 127.0.0.1 --port \$PORT --workers 1 --loop uvloop --no-ws --log-level warning"
OUT_DIR="$BENCH_WORK/asgi-$(date +%Y%m%d-%H%M%S)"
export OUT_DIR
SERVER_CPUS="${SERVER_CPUS:-1}" WRK_CPUS="${WRK_CPUS:-0}" START_TIMEOUT="${START_TIMEOUT:-20}"
mkdir -p "$OUT_DIR"
# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh"

step "servers (one worker each, pinned to CPU $SERVER_CPUS; client on CPU $WRK_CPUS)"
cat <<EOF
  webserver   1 worker (-w 1; its master serves nothing), $THREADS serving threads, uvloop
  uvicorn     1 worker, uvloop, httptools
  granian     1 worker, uvloop, its default runtime threads
EOF

for app in hello:app fastapi:main:app; do
  if [[ $app == fastapi:* ]]; then kind=fastapi; target=${app#fastapi:}; else kind=bare; target=$app; fi
  module=${target%%:*}
  step "$target ($kind hello, GET /)"
  OUT_DIR="$OUT_DIR/$module" "$ROOT/bench/scenarios.sh" \
    "webserver|webserver|keepalive:/,close:/|$ws $target $ws_args" \
    "uvicorn|uvicorn|keepalive:/,close:/|$uvicorn $target" \
    "granian|granian|keepalive:/,close:/|$granian $target"
  python3 "$ROOT/bench/asgi_summary.py" "$OUT_DIR/$module/scenarios.tsv" "$kind"
done

step "$SLEEPERS requests at once, each awaiting asyncio.sleep(1) (hello:sleep; target < 3 s)"
port=18395
for entry in "webserver|$ws hello:sleep $ws_args" "uvicorn|$uvicorn hello:sleep" "granian|$granian hello:sleep"; do
  name=${entry%%|*}; cmd=${entry#*|}
  if start_server "$name" "$cmd" "$port" "$OUT_DIR/sleep10k-$name.log"; then
    printf '  %-10s ' "$name"
    taskset -c "$WRK_CPUS" python3 "$ROOT/bench/asgi_sleep10k.py" "$port" "$SLEEPERS" || true
    stop_server || true
  fi
  port=$((port + 1))
done
step "WebSocket echo, 64-byte messages over $WS_CONNS connections (hello:echo; target >= 1.0x uvicorn)"
CARGO_TARGET_DIR="$BENCH_WORK/target" cargo build --release --locked --manifest-path "$ROOT/bench/ws-peer/Cargo.toml" \
  --offline 2>/dev/null \
  || CARGO_TARGET_DIR="$BENCH_WORK/target" cargo build --release --locked --manifest-path "$ROOT/bench/ws-peer/Cargo.toml"
peer="$BENCH_WORK/target/release/ws-peer"
echo_res="$OUT_DIR/ws-echo.jsonl"; : >"$echo_res"
for round in $(seq 1 "$ROUNDS"); do
  for entry in "webserver|$ws hello:echo $ws_args" "uvicorn|$uvicorn hello:echo"; do
    name=${entry%%|*}; cmd=${entry#*|}
    start_server "$name" "$cmd" 18399 "$OUT_DIR/ws-echo-$name.log" || continue
    j=$(taskset -c "$WRK_CPUS" "$peer" load 18399 "$WS_CONNS" "${DURATION:-5}" 64) || j=""
    stop_server || true
    [[ -n "$j" ]] && echo "{\"round\": $round, \"name\": \"$name\", \"result\": $j}" >>"$echo_res"
  done
done
python3 - "$echo_res" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = lambda name, key: statistics.median(r["result"][key] for r in rows if r["name"] == name)
for name in ("webserver", "uvicorn"):
    if any(r["name"] == name for r in rows):
        print(f"  {name:<10} {med(name, 'per_sec'):>9.0f} msg/s  p99 {med(name, 'p99_us'):>6.0f} us")
if {r["name"] for r in rows} >= {"webserver", "uvicorn"}:
    print(f"  ratio webserver / uvicorn: {med('webserver', 'per_sec') / med('uvicorn', 'per_sec'):.2f} (target >= 1.0)")
PY
echo "raw data: $OUT_DIR"
