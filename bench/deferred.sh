#!/usr/bin/env bash
# deferred.sh — issue 10's numbers: requests an app parks (ABI 1.1) on the axum sample app
# (sample-apps/axum-app, served as `axum_app:app`), with the release build:
#   a. SLEEP_N (10,000) concurrent `GET /sleep?ms=1000` on `--threads 2`: all answered 200, wall
#      time from the first connect to the last answer (target < 3 s), server RSS growth (< 100 MiB),
#      threads before / during / after; the same client on axum-serve as the memory reference;
#   b. SSE_N (1,000) concurrent `GET /events?n=SSE_EVENTS` (100: one event per 100 ms, 10 s) on
#      `--threads 2`: every event delivered in order, threads before / midway / after (fixed);
#   c. the app's hello route `/` on webserver vs the same router on its `axum-serve` binary (tokio,
#      one worker thread per CPU of its affinity: 1 here, like webserver's default --threads), with
#      bench/scenarios.sh (keepalive -c50, same pinning, rounds, medians): requests/s ratio
#      (≥ 0.9×) and p99 ratio (≤ 1.2×);
#   d. one UPLOAD_BYTES (1 GiB) streamed `POST /upload` (the handler hashes the body chunk by chunk)
#      with `--max-body` raised: peak server RSS (< 64 MiB).
# Then one table with the targets (bench/deferred.py table), also in $OUT_DIR/table.md.
#
# Usage:  bench/deferred.sh            (QUICK=1: c with one round of 2 s, b with 30 events)
#         SLEEP_MS=5000 bench/deferred.sh   (a: every request parked at once even when a loaded
#                                            client is slow to open 10,000 connections; the table's
#                                            "bytes per request in flight" is then the cost of one)
# Needs the release build (`cargo build --release --workspace`: target/release/webserver,
# libaxum_app.so, axum-serve), wrk (bench/setup.sh) and python3.
#
# Method (bench/lib.sh, as scenarios.sh and idle.sh): each server pinned to CPU $SERVER_CPUS (1)
# in its own session (setsid; memory and threads summed over the session, master and worker
# alike; stopped by session id), the client (bench/deferred.py, one epoll loop) pinned to $WRK_CPUS (0);
# a fresh server per measurement; the cores' busy share without our load is checked first and a
# warning printed if something else uses them. Only 127.0.0.1 is contacted; every client run is
# bounded (timeout + the client's own --deadline).
#
# Env: QUICK, SLEEP_N (10000), SLEEP_MS (1000), SSE_N (1000), SSE_EVENTS (100), UPLOAD_BYTES
#      (1073741824), ROUNDS/DURATION/WARMUP (scenarios.sh's), SERVER_CPUS (1), WRK_CPUS (0),
#      BASE_PORT (18900), START_TIMEOUT (20), OUT_DIR, BUSY_WARN_PCT (10)
# Output: $OUT_DIR/deferred.jsonl (one JSON line per client run), $OUT_DIR/axum/ (scenarios.sh),
#         $OUT_DIR/logs/, $OUT_DIR/table.md.
set -uo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
BENCH_WORK="${BENCH_WORK:-/tmp/webserver-bench}"
if [[ "${QUICK:-0}" == 1 ]]; then
  export ROUNDS="${ROUNDS:-1}" DURATION="${DURATION:-2}" WARMUP="${WARMUP:-1}"
  SSE_EVENTS="${SSE_EVENTS:-30}"
fi
SLEEP_N="${SLEEP_N:-10000}"
SLEEP_MS="${SLEEP_MS:-1000}"
SSE_N="${SSE_N:-1000}"
SSE_EVENTS="${SSE_EVENTS:-100}"
UPLOAD_BYTES="${UPLOAD_BYTES:-1073741824}"
SERVER_CPUS="${SERVER_CPUS:-1}"
WRK_CPUS="${WRK_CPUS:-0}"
BASE_PORT="${BASE_PORT:-18900}"
START_TIMEOUT="${START_TIMEOUT:-20}"
BUSY_WARN_PCT="${BUSY_WARN_PCT:-10}"
OUT_DIR="${OUT_DIR:-$BENCH_WORK/deferred-$(date +%Y%m%d-%H%M%S)}"
# The client's own deadline per run: the parked time plus generous room for opening connections.
CLIENT_SLACK_S=30

WS="$ROOT/target/release/webserver"
AXUM_SERVE="$ROOT/target/release/axum-serve"
for f in "$WS" "$ROOT/target/release/libaxum_app.so" "$AXUM_SERVE"; do
  [[ -x "$f" || -f "$f" ]] || { echo "deferred.sh: missing $f; run: cargo build --release --workspace" >&2; exit 2; }
done
for tool in wrk taskset setsid curl python3; do
  command -v "$tool" >/dev/null || { echo "deferred.sh: missing $tool (bench/setup.sh installs wrk)" >&2; exit 2; }
done

mkdir -p "$OUT_DIR/logs"
RES="$OUT_DIR/deferred.jsonl"; : >"$RES"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (( $(ulimit -n) < SLEEP_N + 200 )); then
  echo "deferred.sh: WARNING: open-file limit $(ulimit -n) < SLEEP_N+200; connections will be refused" >&2
fi
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
trap 'stop_server; exit 130' INT TERM

quiet_check() {  # label
  local busy; busy=$(background_busy)
  if busy_over "$busy" "$BUSY_WARN_PCT"; then
    echo "deferred.sh: WARNING ($1): another process keeps the cores busy ($busy %); rerun on a quiet machine" \
      | tee -a "$OUT_DIR/meta.txt" >&2
  fi
}

# One client run against one fresh server (CMD starts it on 127.0.0.1:$PORT in the foreground).
run_client() {  # label port bound_s cmd client-args...
  local label=$1 port=$2 bound=$3 cmd=$4; shift 4
  quiet_check "$label"
  local j=""
  if start_server "$label" "$cmd" "$port" "$OUT_DIR/logs/$label.log"; then
    sleep 0.5
    j=$(taskset -c "$WRK_CPUS" timeout "$(( bound + 10 ))" python3 "$BENCH_DIR/deferred.py" "$@" \
          --label "$label" --port "$port" --sid "$SRV_SID" --deadline "$bound" 2>>"$OUT_DIR/logs/$label.client.err")
    stop_server
  fi
  [[ -n "$j" ]] || j="{\"test\": \"$label\", \"error\": \"server did not start or the client failed (see $OUT_DIR/logs/$label*)\"}"
  echo "$j" >>"$RES"
  echo "  $label: $j"
}
ws() { echo "exec $WS --bind 127.0.0.1:\$PORT $* axum_app:app"; }

{
  echo "deferred.sh: SLEEP_N=$SLEEP_N SLEEP_MS=$SLEEP_MS SSE_N=$SSE_N SSE_EVENTS=$SSE_EVENTS UPLOAD_BYTES=$UPLOAD_BYTES out=$OUT_DIR"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); server CPU $SERVER_CPUS, client CPU $WRK_CPUS; ulimit -n $(ulimit -n)"
} | tee "$OUT_DIR/meta.txt"
T0=$SECONDS

echo "== a. $SLEEP_N concurrent /sleep?ms=$SLEEP_MS, --threads 2"
run_client sleep "$BASE_PORT" $(( SLEEP_MS / 1000 + CLIENT_SLACK_S )) "$(ws --threads 2)" \
  sleep --n "$SLEEP_N" --ms "$SLEEP_MS"
echo "   the same on axum-serve (reference for the memory)"
run_client sleep-axum-serve $(( BASE_PORT + 3 )) $(( SLEEP_MS / 1000 + CLIENT_SLACK_S )) "exec $AXUM_SERVE 127.0.0.1:\$PORT" \
  sleep --n "$SLEEP_N" --ms "$SLEEP_MS"

echo "== b. $SSE_N concurrent SSE streams of $SSE_EVENTS events, --threads 2"
run_client sse $(( BASE_PORT + 1 )) $(( SSE_EVENTS / 10 + CLIENT_SLACK_S )) "$(ws --threads 2)" \
  sse --n "$SSE_N" --events "$SSE_EVENTS"

echo "== c. axum hello: webserver vs axum-serve (bench/scenarios.sh, keepalive)"
OUT_DIR="$OUT_DIR/axum" BASE_PORT=$(( BASE_PORT + 10 )) "$BENCH_DIR/scenarios.sh" \
  "webserver|webserver|keepalive:/|$(ws)" \
  "axum-serve|axum-serve|keepalive:/|exec $AXUM_SERVE 127.0.0.1:\$PORT" \
  | tee "$OUT_DIR/axum.log" || echo "deferred.sh: scenarios.sh failed (see above)"

echo "== d. one $UPLOAD_BYTES-byte streamed POST /upload, --max-body raised"
run_client upload $(( BASE_PORT + 2 )) $(( CLIENT_SLACK_S * 2 )) "$(ws --max-body $(( UPLOAD_BYTES * 2 )))" \
  upload --bytes "$UPLOAD_BYTES"

echo "== deferred.sh time: $(( SECONDS - T0 ))s; raw data in $OUT_DIR"
{
  grep -h 'WARNING' "$OUT_DIR/meta.txt" "$OUT_DIR/axum/meta.txt" 2>/dev/null | sed 's/^/note: /' || true
  python3 "$BENCH_DIR/deferred.py" table "$RES" "$OUT_DIR/axum/scenarios.tsv"
  echo
  echo "(server: \`webserver --threads 2 axum_app:app\` for a and b, default threads (one per CPU of its affinity: 1) for c; axum-serve: tokio, one worker thread per CPU of its affinity (1); every server pinned to CPU $SERVER_CPUS, the clients to CPU $WRK_CPUS; threads and RSS summed over the server's session, master + 1 worker.)"
} | tee "$OUT_DIR/table.md"
