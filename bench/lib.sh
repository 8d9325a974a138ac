# lib.sh — helpers shared by bench/scenarios.sh and bench/idle.sh (sourced, not run).
# Same process handling as ../shared/bench/compare.sh: a server runs pinned (taskset -c
# $SERVER_CPUS) in its own session (setsid); its CPU is summed over the session; it is stopped by
# process group / session id only (never by name).  Callers set SERVER_CPUS and START_TIMEOUT.
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
SRV_PID=""; SRV_SID=""
start_server() {  # name cmd port log
  local name=$1 cmd=$2 port=$3 log=$4
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
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
  until curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; do
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
