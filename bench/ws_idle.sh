#!/usr/bin/env bash
# ws_idle.sh — issue 19: 10,000 idle WebSockets on one worker (the C echo, tests/fixtures/ws_echo.c):
# worker RSS growth (target < 20 MiB), threads before/after (fixed), and new handshakes meanwhile
# (target p99 < 10 ms). The server runs pinned to CPU $SERVER_CPUS in its own session; the client
# (bench/ws_idle.py) on $WRK_CPUS. Builds the echo with cc; uses target/release/webserver (cargo
# build --release first) unless WEBSERVER is set.
#
#     bench/ws_idle.sh                 # 10,000 connections
#     WS_CONNS=2000 bench/ws_idle.sh   # a quick run
#
# Env: WS_CONNS (10000) PROBES (200) SERVER_CPUS (1) WRK_CPUS (0) PORT (18560) START_TIMEOUT (20)
set -uo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
WS_CONNS="${WS_CONNS:-10000}"
PROBES="${PROBES:-200}"
SERVER_CPUS="${SERVER_CPUS:-1}"
WRK_CPUS="${WRK_CPUS:-0}"
PORT="${PORT:-18560}"
START_TIMEOUT="${START_TIMEOUT:-20}"
WEBSERVER="${WEBSERVER:-$ROOT/target/release/webserver}"
WORK="${BENCH_WORK:-/tmp/webserver-bench}/ws-idle"
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
trap 'stop_server; exit 130' INT TERM
[[ -x "$WEBSERVER" ]] || { echo "ws_idle.sh: $WEBSERVER missing: cargo build --release" >&2; exit 2; }
mkdir -p "$WORK"
cc -O2 -shared -fPIC -I "$ROOT/app-abi/include" -o "$WORK/libws_echo.so" "$ROOT/tests/fixtures/ws_echo.c" || exit 2
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(( $(ulimit -n) >= WS_CONNS + 300 )) || echo "ws_idle.sh: WARNING: open-file limit $(ulimit -n) < WS_CONNS+300" >&2
cmd="exec $WEBSERVER -b 127.0.0.1:$PORT --threads 2 --ws-ping-interval 0 $WORK/libws_echo.so:app"
start_server webserver "$cmd" "$PORT" "$WORK/server.log" || exit 1
sleep 0.5
json=$(taskset -c "$WRK_CPUS" python3 "$BENCH_DIR/ws_idle.py" --port "$PORT" --sid "$SRV_SID" \
         --n "$WS_CONNS" --probes "$PROBES")
stop_server
python3 - "$json" "$WS_CONNS" <<'PY'
import json, sys
r, n = json.loads(sys.argv[1]), int(sys.argv[2])
mib = r["delta_rss_kb"] / 1024
print(f"{'measure':<38} {'webserver':>12} {'target':>12} {'ratio':>7}")
rows = [
    (f"RSS growth, {n} idle WebSockets (MiB)", mib, 20.0 * n / 10000),
    ("bytes per idle WebSocket", r["bytes_per_ws"], 20 * 1024 * 1024 / 10000),
    ("new handshake + echo p99 (ms)", r["probe_ms"]["p99"], 10.0),
]
for name, value, target in rows:
    print(f"{name:<38} {value:>12.1f} {target:>12.1f} {value / target:>7.2f}")
print(f"threads {r['threads_base']} -> {r['threads_loaded']}; handshake p50 {r['probe_ms']['p50']} ms, max {r['probe_ms']['max']} ms; failed {r['failed']}")
PY
