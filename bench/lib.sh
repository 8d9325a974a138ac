# lib.sh — helpers shared by the bench scripts (sourced, not run).
# A server runs pinned (taskset -c $SERVER_CPUS) in its own session (setsid), so its CPU time is
# summed over every process of that session (a master and its workers alike), and it is stopped by
# process group / session id only (never by name).  Callers set SERVER_CPUS and START_TIMEOUT
# (or call wrk_defaults).

# The defaults of a wrk run that compare.sh and syscalls.sh share, for what the caller's
# environment leaves unset: DURATION (3) WARMUP (1) CONNS (50) SERVER_CPUS (1) WRK_CPUS (0)
# BASE_PORT (18700) START_TIMEOUT (20). ROUNDS and OUT_DIR stay each script's own.
wrk_defaults() {
  DURATION="${DURATION:-3}"
  WARMUP="${WARMUP:-1}"
  CONNS="${CONNS:-50}"
  SERVER_CPUS="${SERVER_CPUS:-1}"
  WRK_CPUS="${WRK_CPUS:-0}"
  BASE_PORT="${BASE_PORT:-18700}"
  START_TIMEOUT="${START_TIMEOUT:-20}"
}
session_ticks() {
  local sid=$1 total=0 f line rest
  for f in /proc/[0-9]*/stat; do
    { read -r line <"$f"; } 2>/dev/null || continue
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    [[ "$4" == "$sid" ]] && total=$(( total + ${12} + ${13} + ${14} + ${15} ))
  done
  echo "$total"
}
session_pids() {
  local sid=$1 f line rest
  for f in /proc/[0-9]*/stat; do
    { read -r line <"$f"; } 2>/dev/null || continue
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    [[ "$4" == "$sid" ]] && { f=${f#/proc/}; echo "${f%/stat}"; }
  done
}
# The threads of every process in session `sid` (a server that stopped answering), twice one
# second apart: each one's name, state, wait channel, current system call and CPU ticks (user,
# system), so a thread that waits shows where and one that spins shows its ticks growing. Taken
# before the server is stopped, since stopping it is what ended issue 22's stall. (gdb's stacks
# were tried: attaching to a worker hung past 20 s on this machine.)
thread_snapshot() {  # sid file
  local p t pass
  for pass in 1 2; do
    (( pass == 1 )) || sleep 1
    echo "== $(date -u +%T.%N | cut -c1-12)"
    for p in $(session_pids "$1"); do
      echo "process $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-120)"
      for t in /proc/"$p"/task/*; do
        awk -v name="$(cat "$t/comm" 2>/dev/null)" -v tid="${t##*/}" \
          -v wchan="$(cat "$t/wchan" 2>/dev/null)" -v call="$(cat "$t/syscall" 2>/dev/null)" \
          '{ sub(/.*\) /, ""); printf "  %-14s tid=%s state=%s wchan=%s syscall=%s ticks=%s+%s\n",
             name, tid, $1, wchan, call, $12, $13 }' "$t/stat" 2>/dev/null
      done
    done
  done >"$2" 2>&1
}
# What the gRPC benches (grpc.sh, h2_stall.sh) share: the release build of webserver and
# grpc-app (unless SKIP_BUILD=1); REL, URL and CALL for $PORT; GRPC_ARGS, h2load's options for one
# prepared unary SayHello call, whose message is written to $RUN/say-hello.bin.
grpc_setup() {
  if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p webserver -p grpc-app
  fi
  REL="$ROOT/target/release"
  URL="http://127.0.0.1:$PORT"
  CALL="$URL/greeter.Greeter/SayHello"
  # One length-prefixed gRPC message: flag 0, length 7, then HelloRequest { name: "bench" }
  # (field 1, wire type 2: 0x0a, length 5).
  printf '\x00\x00\x00\x00\x07\x0a\x05bench' >"$RUN/say-hello.bin"
  GRPC_ARGS=(-d "$RUN/say-hello.bin" -H "content-type: application/grpc" -H "te: trailers")
}
# A gRPC server (grpc_setup's URL) answers a unary call.
grpc_answers() {
  "$REL/grpc-client" "$URL" unary ready >/dev/null 2>&1
}
SRV_PID=""; SRV_SID=""
# Whether a server answers on `port`: a plain GET on /, or the caller's SERVER_PROBE (a function
# given the port) for servers that speak TLS or only HTTP/2.
server_answers() {  # port
  if [[ -n "${SERVER_PROBE:-}" ]]; then "$SERVER_PROBE" "$1"; else
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/"; fi
}
start_server() {  # name cmd port log
  local name=$1 cmd=$2 port=$3 log=$4
  if server_answers "$port"; then
    echo "${0##*/}: port $port already answers; refusing to start $name" >&2; return 1
  fi
  PORT=$port taskset -c "$SERVER_CPUS" setsid bash -c "$cmd" >"$log" 2>&1 </dev/null &
  SRV_PID=$!
  # setsid (no fork: the background child is not a group leader) makes the child's session id its
  # own pid. Wait for that: reading the session id too early (a loaded box can take well over
  # 50 ms to exec taskset and setsid) would give OUR session, and stop_server would then kill us.
  local w sid
  SRV_SID=""
  for w in $(seq 1 100); do
    sid=$(awk '{s=$0; sub(/.*\) /,"",s); split(s,a," "); print a[4]}' "/proc/$SRV_PID/stat" 2>/dev/null)
    if [[ "$sid" == "$SRV_PID" ]]; then SRV_SID=$sid; break; fi
    [[ -z "$sid" ]] && break   # exited
    sleep 0.05
  done
  if [[ -z "$SRV_SID" ]]; then
    echo "${0##*/}: $name did not get its own session (pid $SRV_PID); not measuring it" >&2
    kill -TERM "$SRV_PID" 2>/dev/null; wait "$SRV_PID" 2>/dev/null; SRV_PID=""; return 1
  fi
  local t0=$SECONDS
  until server_answers "$port"; do
    if ! kill -0 "$SRV_PID" 2>/dev/null; then
      echo "${0##*/}: $name exited during start (see $log)" >&2; SRV_PID=""; return 1
    fi
    if (( SECONDS - t0 > START_TIMEOUT )); then
      echo "${0##*/}: $name did not answer on $port within ${START_TIMEOUT}s" >&2; stop_server; return 1
    fi
    sleep 0.1
  done
}
stop_server() {
  [[ -n "$SRV_PID" ]] || return 0
  local sid=$SRV_SID p i
  kill -TERM -- "-$sid" 2>/dev/null
  for p in $(session_pids "$sid"); do kill -TERM "$p" 2>/dev/null; done
  for i in $(seq 1 50); do
    [[ -z "$(session_pids "$sid")" ]] && break
    sleep 0.1
  done
  if [[ -n "$(session_pids "$sid")" ]]; then
    kill -KILL -- "-$sid" 2>/dev/null
    for p in $(session_pids "$sid"); do kill -KILL "$p" 2>/dev/null; done
  fi
  wait "$SRV_PID" 2>/dev/null
  SRV_PID=""; SRV_SID=""
}

# Busy share of each core over half a second, as "cpu0/cpu1/..." percentages (user through steal
# in /proc/stat but idle and iowait, so softirq work counts; guest time is already in user): taken while none of our load runs, it
# shows what other processes on the machine are doing to the measurement.
background_busy() {
  local before after
  before=$(grep '^cpu[0-9]' /proc/stat)
  sleep 0.5
  after=$(grep '^cpu[0-9]' /proc/stat)
  awk 'NR == FNR { for (i = 2; i <= 9; i++) start[$1, i] = $i; next }
       { total = 0
         for (i = 2; i <= 9; i++) { delta[i] = $i - start[$1, i]; total += delta[i] }
         idle = delta[5] + delta[6]
         busy = total > 0 ? 100 * (total - idle) / total : 0
         printf "%s%.0f", (FNR > 1 ? "/" : ""), busy }
       END { print "" }' <(echo "$before") <(echo "$after")
}

# True if any core in background_busy's "a/b/..." ($1) is busier than $2 percent.
busy_over() {
  awk -v cores="$1" -v limit="$2" 'BEGIN { n = split(cores, c, "/")
    for (i = 1; i <= n; i++) if (c[i] + 0 > limit + 0) exit 0
    exit 1 }'
}

# A throwaway certificate for localhost and 127.0.0.1, the same for every server in a run:
# writes DIR/key.pem and DIR/cert.pem.
bench_certificate() {  # dir
  openssl req -x509 -nodes -days 2 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null
}
