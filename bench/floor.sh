#!/usr/bin/env bash
# floor.sh — issue 18's keep-alive hello beside the floor servers (bench/floor-hello): server CPU
# per request split into user and kernel time, context switches per request, requests/s and p99,
# each as a ratio to the first server; with PROFILE=1 also where the CPU goes (perf record -g).
#
# Usage:  bench/floor.sh             (webserver, hyper, floor-epoll, floor-uring)
#         bench/floor.sh 'NAME|CMD' ...   (CMD starts one server on 127.0.0.1:$PORT, as in
#                                          bench/scenarios.sh; the first is the baseline)
# Method: per round (ROUNDS, the servers' order rotated each round, each started afresh, pinned
# to CPU $SERVER_CPUS with wrk on $WRK_CPUS): WARMUP s of `wrk -t1 -c$CONNS` keep-alive, then
# DURATION s measured: utime and stime of the server's session from /proc, and
# `perf stat -e task-clock,context-switches,cpu-migrations` on its processes. Medians of rounds;
# on a busy machine compare only the ratios of one run. PROFILE=1 adds, after the rounds, one
# more run per server under `perf record -g` (kernel symbols need root) and prints the 25
# hottest functions of each (self time) in ns per request; the data stays in OUT_DIR.
# The floor servers answer every head with one fixed response and are no HTTP servers: they
# are kept out of bench/run.sh and bench/peers.sh.
# Env: ROUNDS (5) DURATION (3) WARMUP (1) CONNS (50) SERVER_CPUS (1) WRK_CPUS (0)
#      BASE_PORT (18700) SKIP_BUILD (0) PROFILE (0) OUT_DIR BENCH_WORK (/tmp/webserver-bench)
# Builds (unless SKIP_BUILD=1): webserver and libhello.so (release), hyper-hello (bench/setup.sh)
# and the floor servers (`--locked`, into $BENCH_WORK/target).
set -uo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
export BENCH_WORK="${BENCH_WORK:-/tmp/webserver-bench}"
ROUNDS="${ROUNDS:-5}"
OUT_DIR="${OUT_DIR:-$BENCH_WORK/floor-$(date +%Y%m%d-%H%M%S)}"
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
wrk_defaults
trap 'stop_server; exit 130' INT TERM
for tool in wrk perf taskset setsid curl; do
  command -v "$tool" >/dev/null || { echo "floor.sh: missing $tool" >&2; exit 2; }
done
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  (cd "$ROOT" && cargo build --release -p webserver -p hello) || exit 1
  "$BENCH_DIR/setup.sh" >/dev/null || exit 1
  CARGO_TARGET_DIR="$BENCH_WORK/target" cargo build --release --locked \
    --manifest-path "$BENCH_DIR/floor-hello/Cargo.toml" || exit 1
fi
if (( $# == 0 )); then
  set -- "webserver|exec $ROOT/target/release/webserver -w 1 --threads 1 --bind 127.0.0.1:\$PORT $ROOT/target/release/libhello.so:app" \
    "hyper|exec $BENCH_WORK/target/release/hyper-hello \$PORT" \
    "floor-epoll|exec $BENCH_WORK/target/release/floor-epoll \$PORT" \
    "floor-uring|exec $BENCH_WORK/target/release/floor-uring \$PORT"
fi
mkdir -p "$OUT_DIR"
ENTRIES=("$@")
N=${#ENTRIES[@]}

# utime and stime (clock ticks) summed over a session's processes and threads.
session_split() {
  local sid=$1 user=0 sys=0 f line rest
  for f in /proc/[0-9]*/task/[0-9]*/stat; do
    { read -r line <"$f"; } 2>/dev/null || continue
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    [[ "$4" == "$sid" ]] && { user=$(( user + ${12} )); sys=$(( sys + ${13} )); }
  done
  echo "$user $sys"
}

# One measured load on a started server: "requests user_ticks sys_ticks" on stdout.
measure() {  # name url tag
  local name=$1 url=$2 tag=$3 pids perf_pid before after requests
  pids=$(session_pids "$SRV_SID" | paste -sd, -)
  before=$(session_split "$SRV_SID")
  perf stat -x, -e task-clock,context-switches,cpu-migrations -p "$pids" \
    -o "$OUT_DIR/$tag-$name.perf" &
  perf_pid=$!
  taskset -c "$WRK_CPUS" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 2s --latency "$url" \
    >"$OUT_DIR/$tag-$name.wrk" 2>&1
  kill -INT "$perf_pid" 2>/dev/null; wait "$perf_pid" 2>/dev/null
  after=$(session_split "$SRV_SID")
  requests=$(awk '/requests in/ {print $1}' "$OUT_DIR/$tag-$name.wrk")
  echo "${requests:-0} $(( ${after% *} - ${before% *} )) $(( ${after#* } - ${before#* } ))"
}

echo "floor.sh: $ROUNDS round(s) x ${DURATION}s, wrk -t1 -c$CONNS keep-alive, servers on CPU $SERVER_CPUS, wrk on CPU $WRK_CPUS (raw: $OUT_DIR)"
for (( r=1; r<=ROUNDS; r++ )); do
  echo "round $r: background busy $(background_busy)"
  for (( k=0; k<N; k++ )); do
    i=$(( (k + r - 1) % N ))
    IFS='|' read -r name cmd <<<"${ENTRIES[$i]}"
    port=$(( BASE_PORT + i ))
    url="http://127.0.0.1:$port/"
    start_server "$name" "$cmd" "$port" "$OUT_DIR/r$r-$name.log" || continue
    taskset -c "$WRK_CPUS" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null 2>&1
    read -r requests user sys < <(measure "$name" "$url" "r$r")
    stop_server
    echo "$r $name $requests $user $sys" >>"$OUT_DIR/runs.txt"
    printf '  %-12s %8s requests, user %4s ticks, kernel %4s ticks\n' "$name" "$requests" "$user" "$sys"
  done
done

if [[ "${PROFILE:-0}" == 1 ]]; then
  for (( i=0; i<N; i++ )); do
    IFS='|' read -r name cmd <<<"${ENTRIES[$i]}"
    port=$(( BASE_PORT + i ))
    url="http://127.0.0.1:$port/"
    start_server "$name" "$cmd" "$port" "$OUT_DIR/profile-$name.log" || continue
    taskset -c "$WRK_CPUS" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null 2>&1
    pids=$(session_pids "$SRV_SID" | paste -sd, -)
    perf record -g -q -o "$OUT_DIR/profile-$name.data" -p "$pids" 2>/dev/null &
    perf_pid=$!
    sleep 0.2
    taskset -c "$WRK_CPUS" wrk -t1 -c"$CONNS" -d"${DURATION}s" "$url" >"$OUT_DIR/profile-$name.wrk" 2>&1
    kill -INT "$perf_pid" 2>/dev/null; wait "$perf_pid" 2>/dev/null
    stop_server
    perf report -i "$OUT_DIR/profile-$name.data" --no-children --sort sym --stdio -g none \
      --percent-limit 0.3 2>/dev/null >"$OUT_DIR/profile-$name.txt"
    perf report -i "$OUT_DIR/profile-$name.data" --children --sort sym --stdio -g none \
      --percent-limit 0 2>/dev/null >"$OUT_DIR/profile-$name.children.txt"
  done
fi

python3 - "$OUT_DIR" "$(getconf CLK_TCK)" "${PROFILE:-0}" "${ENTRIES[@]%%|*}" <<'PY'
import re, statistics, sys
out, tck, profile, names = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4:]
runs = {}
for line in open(f"{out}/runs.txt"):
    r, name, requests, user, sys_ = line.split()
    if int(requests) == 0:
        continue
    requests = int(requests)
    perf = {}
    for row in open(f"{out}/r{r}-{name}.perf"):
        parts = row.strip().split(",")
        if len(parts) > 3 and parts[0].replace(".", "").isdigit():
            perf[parts[2]] = float(parts[0])
    wrk = open(f"{out}/r{r}-{name}.wrk").read()
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", wrk)
    p99_us = float(p99.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[p99.group(2)] if p99 else float("nan")
    secs = float(re.search(r"requests in ([\d.]+)s", wrk).group(1))
    runs.setdefault(name, []).append({
        "rps": requests / secs,
        "user": int(user) / tck / requests * 1e6,
        "sys": int(sys_) / tck / requests * 1e6,
        "cs": perf.get("context-switches", float("nan")) / requests,
        "p99": p99_us,
    })
med = {n: {k: statistics.median(x[k] for x in runs[n]) for k in runs[n][0]} for n in names if n in runs}
for m in med.values():
    m["cpu"] = m["user"] + m["sys"]
base = med.get(names[0])
print(f"== keep-alive, {len(next(iter(runs.values())))} round(s), medians; ratios to {names[0]}")
print(f"| server | req/s | CPU µs/req (user + kernel) | CPU ratio | context switches/req | p99 µs | p99 ratio |")
print("|---|---|---|---|---|---|---|")
for n, m in med.items():
    print(f"| {n} | {m['rps']:.0f} | {m['cpu']:.2f} ({m['user']:.2f} + {m['sys']:.2f}) | "
          f"{m['cpu'] / base['cpu']:.2f}× | {m['cs']:.3f} | {m['p99']:.0f} | {m['p99'] / base['p99']:.2f}× |")
# Where the time goes, inclusive (a function with everything it calls): the system calls that
# move bytes, the receive softirq that loopback runs inside the sender's system call (the peer's
# socket receiving what this server sent, with its ACKs), waiting for events, user space.
STAGES = [
    ("send (send, sendmsg, writev; io_uring's send)", ["__sys_sendto", "__sys_sendmsg", "do_writev", "ksys_write", "io_send"]),
    ("  of which the loopback receive softirq", ["do_softirq.part.0"]),
    ("receive (read, recvfrom; io_uring's recv)", ["ksys_read", "__sys_recvfrom", "io_recv"]),
    ("epoll_wait", ["__x64_sys_epoll_wait", "__x64_sys_epoll_pwait"]),
    ("io_uring_enter besides its sends and receives", ["__do_sys_io_uring_enter", "-io_send", "-io_recv"]),
    ("  of which sleeping and switching (schedule)", ["schedule"]),
]
def inclusive(path):
    incl, user = {}, 0.0
    for line in open(path):
        hit = re.match(r"\s+([\d.]+)%\s+([\d.]+)%\s+\[([k.])\]\s+(\S+)", line)
        if hit:
            incl[hit.group(4)] = incl.get(hit.group(4), 0) + float(hit.group(1))
            if hit.group(3) == ".":
                user += float(hit.group(2))
    return incl, user
def share(incl, funcs):
    return sum(-incl.get(f[1:], 0) if f.startswith("-") else incl.get(f, 0) for f in funcs)
if profile:
    print("\n== inclusive time per request, ns (perf record -g; cpu-clock samples, scaled to the CPU per request)")
    cols = list(med)
    print("| where | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    incl = {n: inclusive(f"{out}/profile-{n}.children.txt") for n in cols}
    ns = lambda n, pct: f"{pct / 100 * med[n]['cpu'] * 1000:.0f}"
    for label, funcs in STAGES:
        print(f"| {label} | " + " | ".join(ns(n, share(incl[n][0], funcs)) for n in cols) + " |")
    print("| other system calls (futex, clock_gettime without vDSO, ...) | " + " | ".join(ns(n, incl[n][0].get("do_syscall_64", 0) - sum(
        share(incl[n][0], f) for l, f in STAGES if not l.startswith("  "))) for n in cols) + " |")
    print("| all kernel | " + " | ".join(ns(n, 100 - incl[n][1]) for n in cols) + " |")
    print("| user space | " + " | ".join(ns(n, incl[n][1]) for n in cols) + " |")
    for n, m in med.items():
        print(f"\n== {n}: hottest functions (self), ns per request at {m['cpu']:.2f} µs/request")
        shown = 0
        for line in open(f"{out}/profile-{n}.txt"):
            hit = re.match(r"\s+([\d.]+)%\s+\[([k.])\]\s+(\S+)", line)
            if hit and shown < 25:
                pct = float(hit.group(1))
                print(f"  {pct:5.1f}%  {pct / 100 * m['cpu'] * 1000:6.0f} ns  [{hit.group(2)}] {hit.group(3)}")
                shown += 1
PY
