#!/usr/bin/env bash
# bench/h2_stall.sh — hunts issue 22's stalled gRPC round: one webserver round of bench/grpc.sh
# answered none of its 500 calls in flight for 5 s (h2load got no byte, not even SETTINGS) after
# a warm-up that h2load cut off mid-calls. One server, as bench/grpc.sh starts it (one worker,
# pinned to CPU 1; h2load on CPU 0), then ROUNDS times: a warm-up that leaves calls unanswered
# (MODE), then `h2load -c 50 -m 10 -n 500`, which must see all 500 answered within STALL seconds.
# A round that does not is a stall: the server's threads (state, wait channel, system call, CPU
# ticks: lib.sh's thread_snapshot) are written to the run's directory while it lasts. A round
# answered in time but whose earliest first byte (h2load's minimum over the 50 connections) came
# after LATE seconds is counted as late: every connection waited, then all were answered at once.
#
#   bench/h2_stall.sh                          # 40 rounds, MODE=mixed, --threads 1
#   ROUNDS=100 THREADS=2 MODE=kill bench/h2_stall.sh
#   FRESH=1 MODE=cut bench/h2_stall.sh            # a new server each round, as grpc.sh starts them
#
# MODE: cut   `h2load -D 1` (h2load stops its clients after 1 s, calls in flight; grpc.sh's warm-up)
#       kill  h2load SIGKILLed after 0.3-1 s, mid-calls (the kernel closes its sockets)
#       half  20 clients that open a call, send half its message, then vanish (RST)
#       mixed each round one of the three, in turn
# Only 127.0.0.1 is contacted; every load is bounded by `timeout`; the server is stopped by its
# session id. Env: ROUNDS (40), MODE (mixed), THREADS (1), STALL (3), LATE (0.1), PORT (18595),
# FRESH=1, SKIP_BUILD=1, BENCH_WORK (/tmp/webserver-bench).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
export BENCH_WORK="${BENCH_WORK:-/tmp/webserver-bench}"
ROUNDS="${ROUNDS:-40}" MODE="${MODE:-mixed}" THREADS="${THREADS:-1}" STALL="${STALL:-3}"
LATE="${LATE:-0.1}"
PORT="${PORT:-18595}"
SERVER_CPUS=1 CLIENT_CPUS=0 START_TIMEOUT=15
RUN="$BENCH_WORK/h2-stall-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RUN"

command -v h2load >/dev/null || { echo "bench/h2_stall.sh: h2load is missing (apt-get install nghttp2-client)" >&2; exit 1; }
grpc_setup

# Clients that open a gRPC call, send 3 of its 12 bytes, and reset their connection (SO_LINGER 0).
half_calls() {  # clients
  timeout 10 python3 - "$PORT" "$1" <<'PY'
import socket, struct, sys, time
port, clients = int(sys.argv[1]), int(sys.argv[2])
def literal(name, value):  # HPACK literal without indexing, new name
    return bytes([0, len(name)]) + name + bytes([len(value)]) + value
block = b"".join(literal(n, v) for n, v in [
    (b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/greeter.Greeter/SayHello"),
    (b":authority", b"127.0.0.1"), (b"content-type", b"application/grpc"), (b"te", b"trailers")])
def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload
socks = []
for _ in range(clients):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"")
              + frame(1, 4, 1, block) + frame(0, 0, 1, b"\x00\x00\x00"))
    socks.append(s)
time.sleep(0.2)
for s in socks:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
PY
}

warm_up() {  # mode round
  case "$1" in
    cut) timeout 5 taskset -c "$CLIENT_CPUS" h2load -D 1 -c 50 -m 10 "${GRPC_ARGS[@]}" "$CALL" >/dev/null 2>&1 || true ;;
    kill)
      local ms=$(( 300 + ($2 * 137) % 700 ))
      { timeout -s KILL "0.$(printf '%03d' "$ms")" taskset -c "$CLIENT_CPUS" \
        h2load -c 50 -m 10 -n 10000000 "${GRPC_ARGS[@]}" "$CALL" >/dev/null 2>&1; } 2>/dev/null || true ;;
    half) half_calls 20 || true ;;
  esac
}

# A fresh server gets grpc.sh's checks first: a unary call, an error status, a stream, nghttp.
start() {  # log
  SERVER_PROBE=grpc_answers start_server webserver \
    "exec $REL/webserver --http2 on --threads $THREADS --bind 127.0.0.1:$PORT $REL/libgrpc_app.so:app" \
    "$PORT" "$1"
  { timeout 5 "$REL/grpc-client" "$URL" unary bench; timeout 5 "$REL/grpc-client" "$URL" unary fail
    timeout 5 "$REL/grpc-client" "$URL" stream s 2; timeout 5 nghttp -v "${GRPC_ARGS[@]}" "$CALL"
  } >/dev/null 2>&1 || true
}

start "$RUN/server.log"
trap "stop_server || true" EXIT
echo "bench/h2_stall.sh: $ROUNDS rounds, MODE=$MODE, --threads $THREADS; raw data in $RUN"
stalls=0 lates=0
modes=(cut kill half)
for round in $(seq 1 "$ROUNDS"); do
  if [[ "${FRESH:-0}" == 1 && $round -gt 1 ]]; then
    stop_server || true
    start "$RUN/server-$round.log"
  fi
  mode=$MODE
  [[ $mode == mixed ]] && mode=${modes[$(( (round - 1) % 3 ))]}
  warm_up "$mode" "$round"
  out="$RUN/round-$round.txt"
  timeout $(( STALL + 10 )) taskset -c "$CLIENT_CPUS" \
    h2load -c 50 -m 10 -n 500 "${GRPC_ARGS[@]}" "$CALL" >"$out" 2>&1 &
  load=$!
  for _ in $(seq 1 $(( STALL * 10 ))); do kill -0 "$load" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$load" 2>/dev/null; then
    thread_snapshot "$SRV_SID" "$RUN/stall-$round.txt"
    kill -TERM "$load" 2>/dev/null || true
  fi
  wait "$load" || true
  done_calls=$(awk '/^requests:/ {print $8}' "$out")
  # The earliest first byte (h2load's minimum, in seconds): all 500 answered, but late on every
  # connection at once is the stall's shorter form.
  first=$(awk '/^time to 1st byte/ { v = $5; unit = v; sub(/[0-9.]+/, "", unit); v += 0
    print (unit == "us" ? v / 1e6 : unit == "ms" ? v / 1e3 : v) }' "$out")
  if [[ "${done_calls:-0}" != 500 ]]; then
    stalls=$((stalls + 1))
    echo "round $round ($mode): ${done_calls:-0} of 500 answered (threads: $RUN/stall-$round.txt)"
  elif awk -v first="${first:-0}" -v late="$LATE" 'BEGIN { exit !(first > late) }'; then
    lates=$((lates + 1))
    echo "round $round ($mode): late: no connection had a byte before ${first}s"
  fi
done
echo "bench/h2_stall.sh: $stalls stalled and $lates late round(s) of $ROUNDS (MODE=$MODE, --threads $THREADS)"
