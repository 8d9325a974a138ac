#!/usr/bin/env bash
# wsgi_threads.sh — what serving threads cost a GIL-bound app: server CPU and context switches
# per request with --threads 1 and --threads N, for the WSGI bridge (one or more builds of
# libwsgi.so, for a before/after) and, with GRANIAN=1, for granian with as many blocking threads.
#
# Usage: bench/wsgi_threads.sh   (after `cargo build --release -p webserver -p wsgi` and
#        bench/peers.sh's virtualenv, or VENV pointing at one with Flask (and granian))
# Env: APP (flaskapp:app), REQ_PATH (/hello), THREADS ("1 4"), ROUNDS (2), DURATION (4),
#      CONNS (50), SERVER_CPUS (1), WRK_CPUS (0), VENV ($BENCH_WORK/peers-venv),
#      LIBS (libwsgi.so paths to compare, "wsgi" = target/release/libwsgi.so; default "wsgi";
#      "batch:LIB" runs LIB's server under `chrt -b 0`, every thread SCHED_BATCH;
#      "handoff:LIB" with WEBSERVER_WSGI_HANDOFF=1, requests queued for the thread running the app;
#      "auto:LIB" with it auto (the default: queued only for an app whose requests keep the GIL
#      long); a plain LIB runs with it 0, the queue off),
#      GRANIAN (1: granian --interface wsgi too), ORDER (1: then bench/wsgi_order.py's turn order
#      over ORDER_SECONDS (3) instead of wrk's latency, same pinning), SHOW (1: wrk's latency lines).
# Per run: requests/s and p99 (wrk), server CPU µs per request and voluntary context switches per
# request (all the server's processes and threads, /proc, over the measured run only). Servers, thread
# counts and rounds are interleaved, so a machine getting busier mid-run shifts them all alike.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_WORK="${BENCH_WORK:-/tmp/webserver-bench}"
VENV="${VENV:-$BENCH_WORK/peers-venv}"
APP="${APP:-flaskapp:app}" REQ_PATH="${REQ_PATH:-/hello}" THREADS="${THREADS:-1 4}"
ROUNDS="${ROUNDS:-2}" DURATION="${DURATION:-4}" CONNS="${CONNS:-50}"
SERVER_CPUS="${SERVER_CPUS:-1}" WRK_CPUS="${WRK_CPUS:-0}" PORT="${PORT:-18690}"
LIBS="${LIBS:-wsgi}"
WS="$ROOT/target/release/webserver"
TICK="$(getconf CLK_TCK)"

# utime+stime ticks and voluntary context switches (a thread waiting: for the GIL, for its
# turn, for events; not the preemptions other processes on the CPU cause) of every process in
# session $1.
usage() {
  local ticks=0 switches=0 pid
  for pid in $(ps -o pid= -s "$1"); do
    [[ -r /proc/$pid/stat ]] || continue
    ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    switches=$((switches + $(cat /proc/"$pid"/task/*/status 2>/dev/null \
      | awk '/^voluntary_ctxt_switches/ {s += $2} END {print s + 0}')))
  done
  echo "$ticks $switches"
}

# The servers: "label|library" (a library for webserver, or "granian").
servers=()
for lib in $LIBS; do
  base="${lib#batch:}"
  base="${base#handoff:}"
  base="${base#auto:}"
  label="$(basename "$base" .so)"
  [[ "$lib" != batch:* ]] || label="$label-batch"
  [[ "$lib" != handoff:* ]] || label="$label-handoff"
  [[ "$lib" != auto:* ]] || label="$label-auto"
  servers+=("$label|$lib")
done
[[ "${GRANIAN:-0}" != 1 ]] || servers+=("granian|granian")

# Starts server $1 (a library or "granian") with $2 threads in a new session; prints its id.
start() {
  local lib=$1 t=$2 sched=() handoff=0
  [[ "$lib" != batch:* ]] || { sched=(chrt -b 0); lib=${lib#batch:}; }
  [[ "$lib" != handoff:* ]] || { handoff=1; lib=${lib#handoff:}; }
  [[ "$lib" != auto:* ]] || { handoff=auto; lib=${lib#auto:}; }
  if [[ "$lib" == granian ]]; then
    (cd "$ROOT/examples/wsgi" && exec setsid taskset -c "$SERVER_CPUS" "$VENV/bin/granian" \
      --interface wsgi --host 127.0.0.1 --port "$PORT" --workers 1 --blocking-threads "$t" \
      --http 1 --no-ws --log-level warning "$APP") >/tmp/wsgi_threads.log 2>&1 &
  else
    (cd "$ROOT/examples/wsgi" && VIRTUAL_ENV="$VENV" WEBSERVER_WSGI_APP="$APP" \
      WEBSERVER_WSGI_HANDOFF="$handoff" \
      exec setsid taskset -c "$SERVER_CPUS" "${sched[@]}" "$WS" -w 1 --threads "$t" \
      --bind "127.0.0.1:$PORT" "$lib:app") >/tmp/wsgi_threads.log 2>&1 &
  fi
  echo $!
}

# Stops the server in session $1, and waits until none of its processes is left: a worker still
# draining holds the port, and the next server could not bind it.
stop() {
  kill -TERM -- "-$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for _ in $(seq 100); do
    [[ -n "$(ps -o pid= -s "$1")" ]] || return 0
    sleep 0.1
  done
}

if [[ "${ORDER:-0}" == 1 ]]; then
  printf '%-14s %-8s %-6s %s\n' server threads round 'turn order (bench/wsgi_order.py)'
else
  printf '%-14s %-8s %-6s %10s %9s %12s %14s\n' server threads round 'req/s' 'p99' 'cpu_us/req' 'waits/req'
fi
for round in $(seq "$ROUNDS"); do
  for t in $THREADS; do
    for server in "${servers[@]}"; do
      label=${server%%|*} lib=${server#*|}
      sid=$(start "$lib" "$t")
      for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT$REQ_PATH" && break; sleep 0.1; done
      taskset -c "$WRK_CPUS" wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$PORT$REQ_PATH" >/dev/null
      if [[ "${ORDER:-0}" == 1 ]]; then
        order="$(taskset -c "$WRK_CPUS" python3 "$ROOT/bench/wsgi_order.py" "$PORT" "$REQ_PATH" "$CONNS" "${ORDER_SECONDS:-3}")"
        stop "$sid"
        printf '%-14s %-8s %-6s %s\n' "$label" "$t" "$round" "$order"
        continue
      fi
      read -r t0 s0 < <(usage "$sid")
      out="$(taskset -c "$WRK_CPUS" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT$REQ_PATH")"
      read -r t1 s1 < <(usage "$sid")
      stop "$sid"
      reqs="$(awk '/requests in/ {print $1}' <<<"$out")"
      rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
      p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
      [[ -z "${SHOW:-}" ]] || grep -E "Latency|requests in|errors|50%|90%|99%" <<<"$out" >&2
      awk -v s="$label" -v t="$t" -v r="$round" -v rps="$rps" -v p99="$p99" -v n="$reqs" \
        -v dt=$((t1 - t0)) -v ds=$((s1 - s0)) -v tick="$TICK" 'BEGIN {
          printf "%-14s %-8s %-6s %10s %9s %12.1f %14.3f\n", s, t, r, rps, p99, dt / tick * 1e6 / n, ds / n }'
    done
  done
done
