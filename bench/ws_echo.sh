#!/usr/bin/env bash
# ws_echo.sh — issue 19's WebSocket echo number: 64-byte binary messages echoed over 50
# connections (each connection sends one message and awaits its echo before the next: a closed
# loop), on webserver with
#   - ws-echo    the Rust sample (sample-apps/ws-echo: host-framed WebSockets, the safe layer),
#   - c-echo     the C echo (tests/fixtures/ws_echo.c, built here with cc -O2),
#   - axum-app   the axum sample's /ws (axum's own tokio-tungstenite over an upgraded byte stream,
#                through webserver-tower),
# against the reference axum::serve + tokio-tungstenite (the axum sample's `axum-serve` binary,
# serving the same router). Target: host-framed apps ≥ 1.0× the reference's messages/s.
#
# Usage:  bench/ws_echo.sh            (QUICK=1: one round of 2 s)
# Needs the release build (`cargo build --release --workspace`), cc, curl, taskset, setsid. The
# load client (bench/ws-load: tokio-tungstenite, versions pinned in its Cargo.toml and Cargo.lock)
# is built here, `--locked`, into $BENCH_WORK/target.
#
# Method (bench/lib.sh, as scenarios.sh): each server pinned to CPU $SERVER_CPUS (1) in its own
# session, stopped by session id; the client (one thread) pinned to $WRK_CPUS (0); servers in
# alternation for ROUNDS rounds, the median round per server reported; only 127.0.0.1 is
# contacted and every client run is bounded by `timeout`. The cores' busy share without our load
# is checked first and a warning printed if something else uses them.
#
# Env: QUICK, ROUNDS (3), DURATION (10 s), CONNS (50), SIZE (64), SERVER_CPUS (1), WRK_CPUS (0),
#      BASE_PORT (18950), START_TIMEOUT (20), OUT_DIR, BUSY_WARN_PCT (10)
# Output: the table on stdout and in $OUT_DIR/table.md; $OUT_DIR/ws_echo.jsonl (one line per run).
set -uo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
BENCH_WORK="${BENCH_WORK:-/tmp/webserver-bench}"
if [[ "${QUICK:-0}" == 1 ]]; then
  ROUNDS="${ROUNDS:-1}" DURATION="${DURATION:-2}"
fi
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
CONNS="${CONNS:-50}"
SIZE="${SIZE:-64}"
SERVER_CPUS="${SERVER_CPUS:-1}"
WRK_CPUS="${WRK_CPUS:-0}"
BASE_PORT="${BASE_PORT:-18950}"
START_TIMEOUT="${START_TIMEOUT:-20}"
BUSY_WARN_PCT="${BUSY_WARN_PCT:-10}"
OUT_DIR="${OUT_DIR:-$BENCH_WORK/ws_echo-$(date +%Y%m%d-%H%M%S)}"

REL="$ROOT/target/release"
WS="$REL/webserver"
for f in "$WS" "$REL/libws_echo.so" "$REL/libaxum_app.so" "$REL/axum-serve"; do
  [[ -f "$f" ]] || { echo "ws_echo.sh: missing $f; run: cargo build --release --workspace" >&2; exit 2; }
done
for tool in cc cargo curl taskset setsid python3; do
  command -v "$tool" >/dev/null || { echo "ws_echo.sh: missing $tool" >&2; exit 2; }
done

mkdir -p "$OUT_DIR/logs" "$BENCH_WORK"
RES="$OUT_DIR/ws_echo.jsonl"; : >"$RES"
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
trap 'stop_server; exit 130' INT TERM

echo "ws_echo.sh: building the load client (bench/ws-load, --locked)" >&2
cargo build --quiet --release --locked --manifest-path "$BENCH_DIR/ws-load/Cargo.toml" \
  --target-dir "$BENCH_WORK/target" || { echo "ws_echo.sh: cannot build bench/ws-load" >&2; exit 2; }
LOAD="$BENCH_WORK/target/release/ws-load"

C_ECHO="$BENCH_WORK/libws_echo_c.so"
cc -std=c99 -O2 -Wall -Wextra -shared -fPIC -I "$ROOT/app-abi/include" \
  -o "$C_ECHO" "$ROOT/tests/fixtures/ws_echo.c" || { echo "ws_echo.sh: cannot build the C echo" >&2; exit 2; }

# name → the server's command line (PORT is set by start_server) and the echo's path.
declare -A CMD=(
  [axum-serve]="exec $REL/axum-serve 127.0.0.1:\$PORT"
  [ws-echo]="exec $WS --bind 127.0.0.1:\$PORT $REL/libws_echo.so:app"
  [c-echo]="exec $WS --bind 127.0.0.1:\$PORT $C_ECHO:app"
  [axum-app]="exec $WS --bind 127.0.0.1:\$PORT $REL/libaxum_app.so:app"
)
ORDER=(axum-serve ws-echo c-echo axum-app)

busy=$(background_busy)
if busy_over "$busy" "$BUSY_WARN_PCT"; then
  echo "ws_echo.sh: WARNING: cores already busy ($busy %) before the load: numbers are noisy" >&2
fi

port=$BASE_PORT
for round in $(seq 1 "$ROUNDS"); do
  for name in "${ORDER[@]}"; do
    port=$((port + 1))
    log="$OUT_DIR/logs/$name-$round.log"
    if ! start_server "$name" "${CMD[$name]}" "$port" "$log"; then
      echo "{\"server\":\"$name\",\"round\":$round,\"failed\":\"start\"}" >>"$RES"; continue
    fi
    line=$(timeout $((DURATION + 60)) taskset -c "$WRK_CPUS" "$LOAD" "ws://127.0.0.1:$port/ws" \
      "$CONNS" "$DURATION" "$SIZE" 2>>"$log")
    stop_server
    if [[ -z "$line" ]]; then
      echo "ws_echo.sh: $name round $round: the client reported nothing (see $log)" >&2
      echo "{\"server\":\"$name\",\"round\":$round,\"failed\":\"client\"}" >>"$RES"; continue
    fi
    echo "{\"server\":\"$name\",\"round\":$round,${line#\{}" >>"$RES"
    echo "ws_echo.sh: $name round $round: $line" >&2
  done
done

python3 - "$RES" "$CONNS" "$SIZE" >"$OUT_DIR/table.md" <<'PY'
import json, statistics, sys
path, conns, size = sys.argv[1], sys.argv[2], sys.argv[3]
runs = {}
for line in open(path):
    r = json.loads(line)
    if "failed" not in r and r.get("errors", 0) == 0:
        runs.setdefault(r["server"], []).append(r)
def median_run(rs):
    rs = sorted(rs, key=lambda r: r["rate"])
    return rs[len(rs) // 2]
ref = median_run(runs["axum-serve"])["rate"] if "axum-serve" in runs else None
print(f"WebSocket echo, {size}-byte messages over {conns} connections (closed loop), median round")
print()
print("| server | messages/s | p50 µs | p99 µs | × axum::serve |")
print("|---|---:|---:|---:|---:|")
for name in ["axum-serve", "ws-echo", "c-echo", "axum-app"]:
    if name not in runs:
        print(f"| {name} | failed | | | |")
        continue
    r = median_run(runs[name])
    ratio = f"{r['rate'] / ref:.2f}×" if ref else "-"
    print(f"| {name} | {r['rate']:,} | {r['p50_us']} | {r['p99_us']} | {ratio} |")
PY
cat "$OUT_DIR/table.md"
