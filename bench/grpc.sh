#!/usr/bin/env bash
# bench/grpc.sh — the tonic greeter (sample-apps/grpc-app) served by webserver through
# webserver-tower beside the same service on tonic's own server (grpc-serve:
# tonic::transport::Server on a single-threaded tokio runtime), in one run, printed as ratios
# webserver / tonic:
#
#   unary calls/s            h2load -c 50 -m 10 (50 h2c connections, 10 calls in flight each)
#                            POSTing one prepared gRPC message (SayHello "bench") with
#                            content-type application/grpc and te: trailers
#   unary calls per server CPU-second, the steadier figure on a busy machine
#
#     bench/grpc.sh                   # 2 rounds of 5 s, after the release build
#     ROUNDS=1 DURATION=2 bench/grpc.sh
#
# Method as bench/http2.sh: each server pinned to CPU 1 (webserver: one worker, --threads 1 from
# the affinity mask, its HTTP/2 thread and the app's tokio runtime, which sizes itself from the
# same mask; tonic: one thread), h2load to CPU 0; each server started fresh per round, the order
# alternating; medians over rounds. Before measuring, grpc-client checks that a unary call, an
# error status and a stream answer right; h2load counts HTTP statuses only, so the prepared call
# it sends is made once with nghttp -v, whose trailers must say grpc-status 0.
# Target (issue 22): >= 1.0x tonic's own server.
# Only 127.0.0.1 is contacted; every run is bounded; servers are stopped by their session id.
# Env: ROUNDS (2), DURATION (5), PORT (18490), SKIP_BUILD=1, BENCH_WORK (/tmp/webserver-bench).
# Needs h2load and nghttp (apt-get install nghttp2-client).
#
# CALLGRIND=N instead counts instructions per call (valgrind's callgrind, N calls by
# `h2load -c 10 -m 10` after 500 of warm-up) in webserver's worker (every thread: the HTTP/2
# thread, the serving thread, the app's runtime) and in tonic's server: figures that do not
# depend on how busy the machine is, for comparing commits. `CALLGRIND=5000 bench/grpc.sh`.
# The worker's dump is also written with the app library's functions named (DUMP.named, by
# bench/callgrind_names.py), and its costliest functions by self cost per call (DUMP.top).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
export BENCH_WORK="${BENCH_WORK:-/tmp/webserver-bench}"
ROUNDS="${ROUNDS:-2}" DURATION="${DURATION:-5}" PORT="${PORT:-18490}"
SERVER_CPUS=1 CLIENT_CPUS=0 START_TIMEOUT=15
HZ=$(getconf CLK_TCK)
RUN="$BENCH_WORK/grpc-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RUN"

for tool in h2load nghttp; do
  command -v "$tool" >/dev/null || {
    echo "bench/grpc.sh: $tool is missing (apt-get install nghttp2-client)" >&2; exit 1; }
done
grpc_setup

declare -A CMD
CMD[webserver]="exec $REL/webserver --http2 on --bind 127.0.0.1:$PORT $REL/libgrpc_app.so:app"
CMD[tonic]="exec $REL/grpc-serve 127.0.0.1:$PORT"

start() {  # name log
  SERVER_PROBE=grpc_answers start_server "$1" "${CMD[$1]}" "$PORT" "$2"
}

# The answers are right before anything is measured: a reply, an error status, a stream, and a
# sample of h2load's own calls ending with grpc-status 0.
check() {  # name
  local out
  out="$("$REL/grpc-client" "$URL" unary bench)$("$REL/grpc-client" "$URL" unary fail)$("$REL/grpc-client" "$URL" stream s 2 | wc -l)"
  [[ "$out" == 'Hello, bench!status 3: the name "fail" is refused2' ]] ||
    { echo "bench/grpc.sh: $1 answered wrongly: $out" >&2; return 1; }
  nghttp -v "${GRPC_ARGS[@]}" "$CALL" >"$RUN/$1-sample.txt" 2>&1
  grep -aq 'recv (stream_id=[0-9]*) grpc-status: 0' "$RUN/$1-sample.txt" ||
    { echo "bench/grpc.sh: $1: the prepared call did not end with grpc-status 0 (see $RUN/$1-sample.txt)" >&2; return 1; }
}

# h2load for DURATION seconds (after a 1 s warm-up, kept in OUT.warm-up): "calls/s
# calls-per-server-CPU-s". A round with fewer than 1,000 calls answered stalled (issue 22: none
# of 500 for 5 s, which h2load counts as no failure): the server's threads are written to
# OUT.threads before it is stopped.
load() {  # out
  local before after answered
  taskset -c "$CLIENT_CPUS" h2load -D 1 -c 50 -m 10 "${GRPC_ARGS[@]}" "$CALL" >"$1.warm-up"
  before=$(session_ticks "$SRV_SID")
  taskset -c "$CLIENT_CPUS" h2load -D "$DURATION" -c 50 -m 10 "${GRPC_ARGS[@]}" "$CALL" >"$1"
  after=$(session_ticks "$SRV_SID")
  grep -q "0 failed, 0 errored" "$1" || echo "bench/grpc.sh: failures in $1" >&2
  answered=$(awk '/^requests:/ { print $6 }' "$1")
  if (( ${answered:-0} < 1000 )); then
    thread_snapshot "$SRV_SID" "$1.threads"
    echo "bench/grpc.sh: only ${answered:-0} calls answered in $1 (threads: $1.threads)" >&2
  fi
  awk -v ticks=$((after - before)) -v hz="$HZ" '
    /^finished in/ { rps = $4 } /^requests:/ { n = $8 }
    END { cpu = ticks / hz; printf "%.0f %.0f\n", rps, (cpu > 0 ? n / cpu : 0) }' "$1"
}

# Instructions per call under callgrind: the worker (webserver) or the server (tonic) is zeroed
# after the warm-up and dumped after N calls.
callgrind() {  # name calls
  local out="$RUN/callgrind-$1" master pid dump ir
  mkdir -p "$out"
  # shellcheck disable=SC2086
  valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$out/callgrind.out.%p" \
    ${CMD[$1]#exec } >"$out/server.log" 2>&1 &
  master=$!
  for _ in $(seq 1 200); do grpc_answers && break; sleep 0.3; done
  pid=$master
  [[ $1 == webserver ]] && pid=$(pgrep -P "$master" | head -1)
  h2load -n 500 -c 10 -m 10 "${GRPC_ARGS[@]}" "$CALL" >/dev/null
  vgdb --pid="$pid" zero >/dev/null 2>&1
  h2load -n "$2" -c 10 -m 10 "${GRPC_ARGS[@]}" "$CALL" | grep -q "0 failed, 0 errored" ||
    echo "bench/grpc.sh: failures under callgrind ($1)" >&2
  vgdb --pid="$pid" dump >/dev/null 2>&1
  cat /proc/"$pid"/maps >"$out/maps" 2>/dev/null || true
  sleep 1
  kill -TERM "$master" 2>/dev/null; wait "$master" 2>/dev/null || true
  dump=$(ls -t "$out"/callgrind.out."$pid".* | head -1)
  ir=$(awk '/^summary:|^totals:/ {print $2; exit}' "$dump")
  echo "$1: $((ir / $2)) instructions per call ($dump)"
  if [[ $1 == webserver ]]; then
    # The worker loads the app through /proc/self/fd, which valgrind cannot read symbols from:
    # name its functions from the real file (DUMP.named), and list the costliest (DUMP.top).
    if python3 "$ROOT/bench/callgrind_names.py" "$dump" "$out/maps" "$REL/libgrpc_app.so" "$2" 30 >"$dump.top"; then
      echo "  by function: $dump.top; named dump: $dump.named"
    fi
  fi
}

if [[ -n "${CALLGRIND:-}" ]]; then
  command -v valgrind >/dev/null || { echo "bench/grpc.sh: valgrind is missing" >&2; exit 1; }
  for name in webserver tonic; do callgrind "$name" "$CALLGRIND"; done
  exit 0
fi

echo "bench/grpc.sh: $ROUNDS round(s) of ${DURATION}s, h2load -c 50 -m 10 unary SayHello; raw data in $RUN"
for round in $(seq 1 "$ROUNDS"); do
  order="webserver tonic"; (( round % 2 == 0 )) && order="tonic webserver"
  for name in $order; do
    start "$name" "$RUN/$name-$round.log"
    check "$name" || { stop_server; exit 1; }
    read -r rps cpu < <(load "$RUN/$name-$round.txt")
    stop_server || true
    echo "$name $round $rps $cpu" | tee -a "$RUN/results.txt"
  done
done

python3 - "$RUN/results.txt" <<'PY'
import statistics, sys
# name round calls/s calls-per-cpu-s
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
def median(name, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == name)
print()
print("| measure (h2load -c 50 -m 10, unary SayHello) | webserver | tonic | ratio | target |")
print("|---|---|---|---|---|")
for label, col in (("unary calls/s", 2), ("unary calls per server CPU-s", 3)):
    ws, to = median("webserver", col), median("tonic", col)
    ratio = ws / to if to else float("nan")
    print(f"| {label} | {ws:,.0f} | {to:,.0f} | {ratio:.2f}x | >= 1.0x {'ok' if ratio >= 1.0 else 'MISSED'} |")
PY
