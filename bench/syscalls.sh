#!/usr/bin/env bash
# syscalls.sh — system calls and server CPU per request, for servers side by side.
#
# Usage:  bench/syscalls.sh 'NAME|CMD' ...
#   CMD starts ONE server in the foreground on 127.0.0.1:$PORT (as in bench/scenarios.sh), e.g.
#   bench/syscalls.sh "webserver|target/release/webserver -w 1 --threads 1 -b 127.0.0.1:\$PORT hello:app" \
#                     "hyper|/tmp/webserver-bench/target/release/hyper-hello \$PORT"
# Per server and round (ROUNDS rounds, the servers' order rotated each round, each started afresh,
# pinned to CPU $SERVER_CPUS with wrk on $WRK_CPUS): WARMUP s of load, then DURATION s of
# `wrk -t1 -c$CONNS` (with `Connection: close` when MODE=close, the default; MODE=keepalive
# otherwise) while `perf stat -e 'syscalls:sys_enter_*'` counts every process of the server's
# session. Prints, per server, the server's CPU µs per request (user+system, from /proc, over the
# session) and every system call made more than 0.01 times per request. CPU figures on a busy
# machine are noisy: compare them only between interleaved rounds of one run; the system call
# counts do not depend on the load.
# Env: MODE (close) ROUNDS (3) DURATION (3) WARMUP (1) CONNS (50) SERVER_CPUS (1) WRK_CPUS (0)
#      BASE_PORT (18700) REQ_PATH (/) START_TIMEOUT (20) OUT_DIR (a fresh /tmp directory)
# Needs perf with the syscalls tracepoints (root, or perf_event_paranoid <= 1) and wrk.
set -uo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
wrk_defaults
MODE="${MODE:-close}"
ROUNDS="${ROUNDS:-3}"
OUT_DIR="${OUT_DIR:-$(mktemp -d /tmp/webserver-syscalls.XXXXXX)}"
(( $# >= 1 )) || { sed -n '2,20p' "$0" >&2; exit 2; }
for tool in wrk perf taskset setsid curl; do
  command -v "$tool" >/dev/null || { echo "syscalls.sh: missing $tool" >&2; exit 2; }
done
mkdir -p "$OUT_DIR"
CLK_TCK=$(getconf CLK_TCK)
trap 'stop_server; exit 130' INT TERM
extra=()
[[ "$MODE" == close ]] && extra=(-H "Connection: close")

ENTRIES=("$@")
N=${#ENTRIES[@]}
for (( r=1; r<=ROUNDS; r++ )); do
  for (( k=0; k<N; k++ )); do
    i=$(( (k + r - 1) % N ))
    IFS='|' read -r name cmd <<<"${ENTRIES[$i]}"
    port=$(( BASE_PORT + (r - 1) * N + i ))
    url="http://127.0.0.1:$port${REQ_PATH:-/}"
    start_server "$name" "$cmd" "$port" "$OUT_DIR/r$r-$name.log" || continue
    taskset -c "$WRK_CPUS" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "${extra[@]}" "$url" >/dev/null 2>&1
    pids=$(session_pids "$SRV_SID" | paste -sd, -)
    t0=$(session_ticks "$SRV_SID")
    perf stat -x, -e 'syscalls:sys_enter_*' -p "$pids" -o "$OUT_DIR/r$r-$name.perf" &
    perf_pid=$!
    sleep 0.2
    taskset -c "$WRK_CPUS" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 2s "${extra[@]}" "$url" \
      >"$OUT_DIR/r$r-$name.wrk" 2>&1
    kill -INT "$perf_pid" 2>/dev/null; wait "$perf_pid" 2>/dev/null
    t1=$(session_ticks "$SRV_SID")
    stop_server
    requests=$(awk '/requests in/ {print $1}' "$OUT_DIR/r$r-$name.wrk")
    echo "$r $name $requests $(( t1 - t0 ))" >>"$OUT_DIR/runs.txt"
    printf '  r%s %-16s %s requests, server CPU %s ticks\n' "$r" "$name" "$requests" "$(( t1 - t0 ))"
  done
done

echo "== $MODE, $CONNS connections, ${DURATION}s x $ROUNDS rounds (raw: $OUT_DIR)"
for entry in "${ENTRIES[@]}"; do
  name=${entry%%|*}
  python3 - "$OUT_DIR" "$name" "$CLK_TCK" <<'EOF'
import glob, statistics, sys
out, name, tck = sys.argv[1], sys.argv[2], int(sys.argv[3])
cpu, calls = [], {}
for line in open(f"{out}/runs.txt"):
    r, n, requests, ticks = line.split()
    if n != name or not requests.isdigit() or int(requests) == 0:
        continue
    requests = int(requests)
    cpu.append(int(ticks) / tck / requests * 1e6)
    for row in open(f"{out}/r{r}-{name}.perf"):
        parts = row.strip().split(",")
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        calls.setdefault(parts[2].replace("syscalls:sys_enter_", ""), []).append(int(parts[0]) / requests)
if not cpu:
    print(f"{name}: no measured round")
    sys.exit()
print(f"{name}: server CPU per request {statistics.median(cpu):.1f} us (rounds: {', '.join(f'{c:.1f}' for c in cpu)})")
rows = sorted(((statistics.median(v), k) for k, v in calls.items()), reverse=True)
total = sum(m for m, _ in rows)
print(f"  system calls per request: {total:.2f}: " + ", ".join(f"{k} {m:.2f}" for m, k in rows if m >= 0.01))
EOF
done
