#!/usr/bin/env bash
# bench/run.sh — the whole benchmark in one command, from any directory, with nothing but this
# repository (plus cargo, and apt for wrk and nginx when they are missing):
#
#     bench/run.sh              # full run, ~8-10 min on the 2-core box
#     QUICK=1 bench/run.sh      # smoke run, ~2 min (1 round of 2 s, 2,000 idle connections)
#
# What it does, in order:
#   1. `cargo build --release --workspace` and the ABI benchmark (`cargo bench --bench abi
#      --no-run`); skip with SKIP_BUILD=1;
#   2. bench/setup.sh: installs wrk and nginx with apt if missing and builds bench/hyper-hello
#      (hyper 1.x, the Rust reference) into $BENCH_WORK (default /tmp/webserver-bench);
#   3. benches/abi.rs (`cargo bench --bench abi`): environ build + app call + response encoding
#      of the hello app, no sockets; ns and server-side heap allocations per request;
#   4. the comparison, bench/scenarios.sh with keepalive and close (wrk -t1 -c50), servers:
#        hyper (bench/hyper-hello: the reference, ratios are to it), nginx (bench/nginx.conf, one
#        worker: the practical ceiling), webserver (`webserver --bind 127.0.0.1:$PORT hello:app`)
#        and webserver-w2 (`--workers 2`);
#   5. bench/scenarios.sh again: pipelined depth 16 (pipeline.lua, -c50) on all four; a 64 KiB
#      response and a 1 MiB POST (-c16) where a server can do it (webserver: the POST goes to
#      the echo app, which reads the body through SHA-256; the 64 KiB response is the stream
#      app's static /bytes?size=65536 body; nginx: a 64 KiB static file and a POST it reads and
#      discards; hyper-hello serves neither);
#   6. bench/idle.sh — 10,000 idle keep-alive connections on one fresh server each (webserver with
#      one worker and --keep-alive 120 so none time out while they are opened, hyper, nginx): extra
#      RSS, thread count before/after, latency of new requests on new connections meanwhile;
#      then the same for webserver over TLS (IDLE_TLS=1);
#   7. bench/summary.py — the final table (scenario × webserver, webserver -w2, hyper, nginx, ratio);
#   8. bench/deferred.sh — issue 10's numbers on the axum sample app (10,000 parked 1 s requests on
#      --threads 2, 1,000 SSE streams, the hello route vs axum-serve, a 1 GiB streamed upload), its
#      own table with targets printed after the main one; skip with SKIP_DEFERRED=1.
#
# Method (bench/scenarios.sh, bench/lib.sh): every server pinned to CPU 1, wrk / the client to
# CPU 0; each server restarted per round; rounds interleaved (order rotated); medians over rounds;
# ratios to hyper measured in the same run.  With keep-alive both cores are full, so also read
# server CPU µs/request; with `Connection: close` wrk is the bottleneck, so compare requests per
# server CPU-second.  The machine may be shared: each round first measures how busy the cores are
# without our load and warns (in the table's notes) if something else uses them — then rerun.
# Only 127.0.0.1 is contacted; every run is bounded; servers are stopped by their session id.
#
# Env: QUICK=1, SKIP_BUILD=1, SKIP_DEFERRED=1, ROUNDS (3), DURATION (5), WARMUP (comparison 2, others 1),
#      IDLE_CONNS (10000), BENCH_WORK, WS_64K='LIB:SYMBOL|PATH' (the webserver app and path for
#      the 64 KiB response; default 'stream:app|/bytes?size=65536', one static body with
#      Content-Length).
# Output: the table on stdout and in $BENCH_WORK/bench-<date>/table.md; raw data beside it
#         (abi.txt, compare/, scen/, idle/, deferred/, meta.txt).
#
# Caveats:
#   * hyper-hello never reads a request body, so it has no 1 MiB POST figure; nginx's POST figure
#     is read-and-discard (an upper bound); the echo app also hashes the body (SHA-256), which is
#     part of what is measured.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export BENCH_WORK="${BENCH_WORK:-/tmp/webserver-bench}"
if [[ "${QUICK:-0}" == 1 ]]; then
  export ROUNDS="${ROUNDS:-1}" DURATION="${DURATION:-2}" WARMUP="${WARMUP:-1}" IDLE_CONNS="${IDLE_CONNS:-2000}"
else
  export ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-5}" IDLE_CONNS="${IDLE_CONNS:-10000}"
fi
WS_64K="${WS_64K:-stream:app|/bytes?size=65536}"
RUN="$BENCH_WORK/bench-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RUN"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  echo "== cargo build --release --workspace; cargo bench --bench abi --no-run"
  cargo build --release --workspace
  cargo bench --bench abi --no-run
fi
echo "== bench/setup.sh (wrk, nginx, hyper-hello)"
"$ROOT/bench/setup.sh"
NGINX="$ROOT/bench/nginx-run.sh"

WS="$ROOT/target/release/webserver"
HYPER="$BENCH_WORK/target/release/hyper-hello"
{
  echo "date: $(date -Is)"
  echo "machine: nproc=$(nproc) cpu='$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')' kernel=$(uname -r)"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') (dirty files: $(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l))"
  echo "command: ${QUICK:+QUICK=$QUICK }bench/run.sh  (ROUNDS=$ROUNDS DURATION=${DURATION}s IDLE_CONNS=$IDLE_CONNS)"
  echo "ulimit -n: $(ulimit -n); loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$RUN/meta.txt"

T0=$SECONDS
# The ABI micro-benchmark (benches/abi.rs) prints
# `environ+call+encode ns_per_request=X allocs_per_request=Y`; pinned like the servers.
ABI_REQUESTS="$([[ "${QUICK:-0}" == 1 ]] && echo 200000 || echo 2000000)"
ABI_CMD=(cargo bench --quiet --bench abi -- "$ROOT/target/release/libhello.so:app" "$ABI_REQUESTS")
(timeout 120 taskset -c 1 "${ABI_CMD[@]}" 2>"$RUN/abi.err" | grep 'ns_per_request=' >"$RUN/abi.txt") || true
if [[ -s "$RUN/abi.txt" ]]; then echo "== ABI micro-benchmark"; cat "$RUN/abi.txt"; else
  echo "== ABI micro-benchmark: failed (see $RUN/abi.err, or run: ${ABI_CMD[*]})"; fi

echo "== comparison: keep-alive and Connection: close"
WARMUP="${WARMUP:-2}" OUT_DIR="$RUN/compare" BASE_PORT=18100 "$ROOT/bench/scenarios.sh" \
  "hyper|hyper|keepalive:/,close:/|$HYPER \$PORT" \
  "nginx|nginx|keepalive:/,close:/|$NGINX" \
  "webserver|webserver|keepalive:/,close:/|$WS --bind 127.0.0.1:\$PORT hello:app" \
  "webserver-w2|webserver-w2|keepalive:/,close:/|$WS --workers 2 --bind 127.0.0.1:\$PORT hello:app" \
  | tee "$RUN/compare.log" || echo "comparison failed (see above)"

echo "== scenarios: pipelined, 64 KiB response, 1 MiB POST"
IFS='|' read -r ws64_app ws64_path <<<"$WS_64K"
OUT_DIR="$RUN/scen" BASE_PORT=18300 "$ROOT/bench/scenarios.sh" \
  "hyper|hyper|pipeline16:/|$HYPER \$PORT" \
  "nginx|nginx|pipeline16:/,body64k:/64k,post1m:/|$NGINX" \
  "webserver|webserver|pipeline16:/|$WS --bind 127.0.0.1:\$PORT hello:app" \
  "webserver-w2|webserver-w2|pipeline16:/|$WS --workers 2 --bind 127.0.0.1:\$PORT hello:app" \
  "webserver-64k|webserver|body64k:$ws64_path|$WS --bind 127.0.0.1:\$PORT $ws64_app" \
  "webserver-echo|webserver|post1m:/|$WS --bind 127.0.0.1:\$PORT echo:app" | tee "$RUN/scen.log" || echo "scenarios.sh failed (see above)"

echo "== idle.sh: $IDLE_CONNS idle keep-alive connections"
OUT_DIR="$RUN/idle" BASE_PORT=18500 "$ROOT/bench/idle.sh" \
  "webserver|webserver|$WS --keep-alive 120 --bind 127.0.0.1:\$PORT hello:app" \
  "hyper|hyper|$HYPER \$PORT" \
  "nginx|nginx|$NGINX" | tee "$RUN/idle.log" || echo "idle.sh failed (see above)"
echo "== idle.sh: $IDLE_CONNS idle TLS connections"
OUT_DIR="$RUN/idle-tls" BASE_PORT=18550 IDLE_TLS=1 "$ROOT/bench/idle.sh" \
  "webserver-tls|webserver|$WS --keep-alive 120 --header-timeout 120 --bind 127.0.0.1:\$PORT,tls --certfile \$CERT --keyfile \$KEY hello:app" \
  | tee "$RUN/idle-tls.log" || echo "idle.sh (TLS) failed (see above)"

if [[ "${SKIP_DEFERRED:-0}" != 1 ]]; then
  echo "== deferred.sh: parked requests on the axum app (issue 10)"
  OUT_DIR="$RUN/deferred" BASE_PORT=18900 "$ROOT/bench/deferred.sh" | tee "$RUN/deferred.log" \
    || echo "deferred.sh failed (see above)"
fi

echo "== benchmark time: $(( SECONDS - T0 ))s; raw data in $RUN"
{
  echo
  cat "$RUN/meta.txt"
  grep -h 'WARNING' "$RUN/compare/meta.txt" "$RUN/scen/meta.txt" 2>/dev/null | sed 's/^/note: /' || true
  echo
  python3 "$ROOT/bench/summary.py" "$RUN"
  echo
  echo "(64 KiB row, webserver: app '${ws64_app}' path '${ws64_path}'$( [[ "$WS_64K" == "stream:app|/bytes"* ]] && echo ' — one static 64 KiB body with Content-Length'); 1 MiB POST: webserver = echo app (reads + SHA-256), nginx = read and discard, hyper-hello does not read bodies.)"
  if [[ -s "$RUN/deferred/table.md" ]]; then echo; cat "$RUN/deferred/table.md"; fi
} | tee "$RUN/table.md"
