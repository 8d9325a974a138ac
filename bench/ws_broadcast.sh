#!/usr/bin/env bash
# ws_broadcast.sh — issue 19: 1,000 WebSocket subscribers, a message to each every 10 ms
# (tests/fixtures/ws_broadcast.c: the app's own thread sends with websocket_send), for
# $DURATION s: every message delivered (no gap in any subscriber's sequence, no send dropped)
# and the server's threads fixed. The server runs pinned to CPU $SERVER_CPUS in its own session,
# the subscribers (bench/ws-peer subscribe, tokio-tungstenite) on $WRK_CPUS.
#
#     bench/ws_broadcast.sh                 # 1,000 subscribers, 5 s
#     SUBS=200 DURATION=2 bench/ws_broadcast.sh
#
# Uses target/release/webserver (cargo build --release first) unless WEBSERVER is set.
# Env: SUBS (1000) DURATION (5) SERVER_CPUS (1) WRK_CPUS (0) PORT (18580) START_TIMEOUT (20)
set -uo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
SUBS="${SUBS:-1000}"
DURATION="${DURATION:-5}"
SERVER_CPUS="${SERVER_CPUS:-1}"
WRK_CPUS="${WRK_CPUS:-0}"
PORT="${PORT:-18580}"
START_TIMEOUT="${START_TIMEOUT:-20}"
WEBSERVER="${WEBSERVER:-$ROOT/target/release/webserver}"
WORK="${BENCH_WORK:-/tmp/webserver-bench}"
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
trap 'stop_server; exit 130' INT TERM
[[ -x "$WEBSERVER" ]] || { echo "ws_broadcast.sh: $WEBSERVER missing: cargo build --release" >&2; exit 2; }
mkdir -p "$WORK/ws-broadcast"
CARGO_TARGET_DIR="$WORK/target" cargo build --release --locked --manifest-path "$BENCH_DIR/ws-peer/Cargo.toml" \
  --offline 2>/dev/null \
  || CARGO_TARGET_DIR="$WORK/target" cargo build --release --locked --manifest-path "$BENCH_DIR/ws-peer/Cargo.toml" \
  || exit 2
cc -O2 -shared -fPIC -pthread -I "$ROOT/app-abi/include" -o "$WORK/ws-broadcast/libws_broadcast.so" \
  "$ROOT/tests/fixtures/ws_broadcast.c" || exit 2
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
threads() { local n=0 p t; for p in $(session_pids "$SRV_SID"); do
  t=$(awk '/^Threads:/ {print $2}' "/proc/$p/status" 2>/dev/null); n=$(( n + ${t:-0} )); done; echo "$n"; }
LOG="$WORK/ws-broadcast/server.log"
start_server webserver "exec $WEBSERVER -b 127.0.0.1:$PORT --ws-ping-interval 0 $WORK/ws-broadcast/libws_broadcast.so:app" \
  "$PORT" "$LOG" || exit 1
before=$(threads)
json=$(taskset -c "$WRK_CPUS" "$WORK/target/release/ws-peer" subscribe "$PORT" "$SUBS" "$DURATION" &
       sleep $(( DURATION / 2 + 2 )); threads >"$WORK/ws-broadcast/threads.during"; wait)
during=$(cat "$WORK/ws-broadcast/threads.during")
stop_server
counts=$(grep -o 'broadcast: sent [0-9]*, dropped [0-9]*' "$LOG" | tail -1)
python3 - "$json" "$DURATION" "$before" "$during" "$counts" <<'PY'
import json, sys
r, secs, before, during, counts = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
expected = secs * 100
print(f"{r['subscribers']} subscribers, a message every 10 ms for {secs} s")
print(f"{'measure':<40} {'value':>10} {'target':>10}")
print(f"{'messages per subscriber (min / max)':<40} {str(r['per_subscriber_min']) + ' / ' + str(r['per_subscriber_max']):>10} {'~' + str(expected):>10}")
print(f"{'gaps in any sequence':<40} {r['gaps']:>10} {0:>10}")
print(f"{'server threads before / during':<40} {before + ' / ' + during:>10} {'equal':>10}")
print(f"server: {counts or 'no count logged'} (target: 0 dropped)")
PY
