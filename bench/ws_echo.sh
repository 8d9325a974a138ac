#!/usr/bin/env bash
# ws_echo.sh — issue 19's echo throughput: 64-byte messages over 50 WebSockets, one in flight per
# connection, on webserver serving the C echo (tests/fixtures/ws_echo.c: RFC 6455 in the server)
# against axum::serve + tokio-tungstenite (bench/ws-peer serve: the same echo as an axum route);
# target: ratio >= 1.0. Both servers run pinned to CPU $SERVER_CPUS in their own session, the load
# client (bench/ws-peer load, tokio-tungstenite) on $WRK_CPUS; rounds alternate the servers and the
# table shows medians (messages/s, client-side p50/p99 round trip). With the release build of the
# samples (cargo build --release --workspace) it adds the Rust sample (sample-apps/ws-echo) and
# the axum app's /ws through webserver-tower. Besides messages/s it prints each server's CPU time
# per message (all processes of its session), the figure to compare on a busy machine.
#
#     bench/ws_echo.sh                          # 3 rounds of 5 s
#     ROUNDS=1 DURATION=2 bench/ws_echo.sh      # a quick run
#
# Builds bench/ws-peer (--offline if the crates are cached) into $BENCH_WORK/target and the echo
# with cc; uses target/release/webserver (cargo build --release first) unless WEBSERVER is set.
# Env: ROUNDS (3) DURATION (5) CONNS (50) SIZE (64) SERVER_CPUS (1) WRK_CPUS (0) PORT (18570)
set -uo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5}"
CONNS="${CONNS:-50}"
SIZE="${SIZE:-64}"
SERVER_CPUS="${SERVER_CPUS:-1}"
WRK_CPUS="${WRK_CPUS:-0}"
PORT="${PORT:-18570}"
START_TIMEOUT="${START_TIMEOUT:-20}"
WEBSERVER="${WEBSERVER:-$ROOT/target/release/webserver}"
WORK="${BENCH_WORK:-/tmp/webserver-bench}"
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
trap 'stop_server; exit 130' INT TERM
[[ -x "$WEBSERVER" ]] || { echo "ws_echo.sh: $WEBSERVER missing: cargo build --release" >&2; exit 2; }
mkdir -p "$WORK/ws-echo"
CARGO_TARGET_DIR="$WORK/target" cargo build --release --locked --manifest-path "$BENCH_DIR/ws-peer/Cargo.toml" \
  --offline 2>/dev/null \
  || CARGO_TARGET_DIR="$WORK/target" cargo build --release --locked --manifest-path "$BENCH_DIR/ws-peer/Cargo.toml" \
  || exit 2
PEER="$WORK/target/release/ws-peer"
cc -O2 -shared -fPIC -I "$ROOT/app-abi/include" -o "$WORK/ws-echo/libws_echo.so" "$ROOT/tests/fixtures/ws_echo.c" || exit 2
declare -A CMDS=(
  [webserver]="exec $WEBSERVER -b 127.0.0.1:\$PORT --ws-ping-interval 0 $WORK/ws-echo/libws_echo.so:app"
  [axum-serve]="exec $PEER serve \$PORT"
)
NAMES=(webserver axum-serve)
# With the release build of the samples, also the Rust sample (safe layer, host-framed) and the
# axum app's /ws (axum's own tokio-tungstenite through webserver-tower).
REL="$(dirname "$WEBSERVER")"
if [[ -f "$REL/libws_echo.so" ]]; then
  CMDS[rust-sample]="exec $WEBSERVER -b 127.0.0.1:\$PORT --ws-ping-interval 0 $REL/libws_echo.so:app"
  NAMES+=(rust-sample)
fi
if [[ -f "$REL/libaxum_app.so" ]]; then
  CMDS[axum-app]="exec $WEBSERVER -b 127.0.0.1:\$PORT $REL/libaxum_app.so:app"
  NAMES+=(axum-app)
fi
RES="$WORK/ws-echo/results.jsonl"; : >"$RES"
for round in $(seq 1 "$ROUNDS"); do
  for name in "${NAMES[@]}"; do
    # The peer answers plain GETs with 405/426 too: start_server's probe only needs an answer.
    start_server "$name" "${CMDS[$name]}" "$PORT" "$WORK/ws-echo/$name.log" || exit 1
    t0=$(session_ticks "$SRV_SID")
    j=$(taskset -c "$WRK_CPUS" "$PEER" load "$PORT" "$CONNS" "$DURATION" "$SIZE")
    t1=$(session_ticks "$SRV_SID")
    stop_server
    echo "{\"round\": $round, \"name\": \"$name\", \"ticks\": $((t1 - t0)), \"result\": $j}" >>"$RES"
  done
done
python3 - "$RES" "$CONNS" "$SIZE" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
hz = int(sys.argv[4])
def med(name, key):
    return statistics.median(r["result"][key] for r in rows if r["name"] == name)
def cpu_us(name):
    # Server CPU (all processes of its session) per echoed message: steadier than messages/s on
    # a busy machine, where the server's CPU is shared.
    return statistics.median(r["ticks"] / hz * 1e6 / max(r["result"]["messages"], 1)
                             for r in rows if r["name"] == name)
names = list(dict.fromkeys(r["name"] for r in rows))
print(f"echo of {sys.argv[3]}-byte messages over {sys.argv[2]} WebSockets ({len(rows)//len(names)} rounds, medians)")
print(f"{'server':<12} {'messages/s':>12} {'p50 us':>8} {'p99 us':>8} {'ratio':>7} {'CPU us/msg':>11} {'CPU ratio':>10}")
ref, ref_cpu = med("axum-serve", "per_sec"), cpu_us("axum-serve")
for name in names:
    rate, cpu = med(name, "per_sec"), cpu_us(name)
    print(f"{name:<12} {rate:>12.0f} {med(name, 'p50_us'):>8.0f} {med(name, 'p99_us'):>8.0f} {rate / ref:>7.2f}"
          f" {cpu:>11.1f} {ref_cpu / cpu:>10.2f}")
print("target: webserver (C echo) and rust-sample / axum-serve >= 1.00; axum-app as measured")
print("CPU ratio: axum-serve's CPU per message over this server's (above 1: this one uses less)")
PY
