#!/usr/bin/env bash
# sandbox_cost.sh — the worker sandbox's cost: CPU time of the worker per kept-alive request
# (utime+stime from /proc/PID/stat, so kernel time, where Landlock and seccomp run, counts),
# and wall time, with --sandbox off, on, and on with --seccomp, in alternating rounds; one
# sequential client (bench/keepalive_loop.py), -w 1 --threads 1, release build expected.
# Usage: bench/sandbox_cost.sh [N requests, 50000] [ROUNDS, 2]
set -euo pipefail
N=${1:-50000}; ROUNDS=${2:-2}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=$ROOT/target/release/webserver; APP=$ROOT/target/release/libhello.so:app
PORT=18777
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
for r in $(seq 1 $ROUNDS); do
  for mode in "off" "on" "on --seccomp"; do
    $BIN -b 127.0.0.1:$PORT -w 1 --threads 1 --sandbox $mode $APP >/dev/null 2>&1 &
    M=$!
    for _ in $(seq 1 100); do curl -s -o /dev/null --max-time 1 http://127.0.0.1:$PORT/ && break; sleep 0.1; done
    W=$(pgrep -P $M | head -1)
    python3 $ROOT/bench/keepalive_loop.py $PORT 2000
    t0=$(ticks $W); s0=$(date +%s.%N)
    python3 $ROOT/bench/keepalive_loop.py $PORT $N
    t1=$(ticks $W); s1=$(date +%s.%N)
    hz=$(getconf CLK_TCK)
    echo "round $r sandbox=$mode: worker CPU $(echo "($t1-$t0)*1000000/$hz/$N" | bc -l | cut -c1-5) us/request, wall $(echo "($s1-$s0)*1000000/$N" | bc -l | cut -c1-5) us/request"
    kill -TERM $M; wait $M 2>/dev/null || true
  done
done
