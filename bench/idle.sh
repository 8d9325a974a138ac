#!/usr/bin/env bash
# idle.sh — N idle keep-alive connections per server (default 10,000), one fresh start each.
#
# Usage:  idle.sh 'NAME|GROUP|CMD' ...      (CMD starts one server on 127.0.0.1:$PORT)
# For each entry: start pinned to CPU $SERVER_CPUS (1) in its own session, wait for the port,
# run bench/idle10k.py pinned to CPU $WRK_CPUS (0): base RSS/PSS and thread count, open N
# connections with one request each (IDLE_OPEN=burst, the default: all at once; serial: one after
# another), measure memory/threads 1 s later, time $PROBES new requests
# on new connections and $REUSE_PROBES on held ones, hold until IDLE_HOLD s, close, stop the server.
# The open-file limit is raised to the hard limit (inherited by the servers and the client).
#
# With IDLE_TLS=1 every connection speaks TLS: each CMD gets $CERT and $KEY (a throwaway
# certificate for 127.0.0.1, lib.sh's bench_certificate) to serve with. The client's handshakes
# take a while (10,000 took 28 s on a busy machine), and a server's header timeout may count them:
# give it a long one (webserver: --header-timeout 120).
# Env: IDLE_CONNS (10000) IDLE_OPEN (burst) IDLE_HOLD (3) PROBES (200) REUSE_PROBES (50) IDLE_DEADLINE (90) IDLE_TLS (0)
#      SERVER_CPUS (1) WRK_CPUS (0) BASE_PORT (18500) OUT_DIR START_TIMEOUT (20)
# Output: $OUT_DIR/idle10k.jsonl ({"name", "group", "result": idle10k.py's JSON}), logs in $OUT_DIR/logs;
# last, a bench/RESULTS.md table row per server against issue 18's target: at most 1 KiB of RSS
# per idle connection, and RSS back down after they close (within a tenth of what they took,
# 2 s after the last one closed). RSS is summed over the server's session (master and workers).
set -uo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IDLE_CONNS="${IDLE_CONNS:-10000}"
IDLE_HOLD="${IDLE_HOLD:-3}"
IDLE_OPEN="${IDLE_OPEN:-burst}"
PROBES="${PROBES:-200}"
REUSE_PROBES="${REUSE_PROBES:-50}"
IDLE_DEADLINE="${IDLE_DEADLINE:-90}"
SERVER_CPUS="${SERVER_CPUS:-1}"
WRK_CPUS="${WRK_CPUS:-0}"
BASE_PORT="${BASE_PORT:-18500}"
START_TIMEOUT="${START_TIMEOUT:-20}"
OUT_DIR="${OUT_DIR:-${BENCH_WORK:-/tmp/webserver-bench}/idle-$(date +%Y%m%d-%H%M%S)}"
(( $# >= 1 )) || { sed -n '2,14p' "$0" >&2; exit 2; }
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
trap 'stop_server; exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (( $(ulimit -n) < IDLE_CONNS + 200 )); then
  echo "idle.sh: WARNING: open-file limit $(ulimit -n) < IDLE_CONNS+200; servers will refuse connections" >&2
fi
mkdir -p "$OUT_DIR/logs"
tls_args=()
if [[ "${IDLE_TLS:-0}" == 1 ]]; then
  bench_certificate "$OUT_DIR"
  export CERT="$OUT_DIR/cert.pem" KEY="$OUT_DIR/key.pem"
  tls_args=(--tls "$CERT")
  tls_answers() { curl -s -o /dev/null --max-time 1 --cacert "$CERT" "https://127.0.0.1:$1/"; }
  SERVER_PROBE=tls_answers
fi
RES="$OUT_DIR/idle10k.jsonl"; : >"$RES"
echo "idle.sh: $IDLE_CONNS idle $([[ ${IDLE_TLS:-0} == 1 ]] && echo 'TLS ')connections opened $([[ $IDLE_OPEN == burst ]] && echo 'at once' || echo 'one after another'), hold ${IDLE_HOLD}s, $PROBES new-connection probes; ulimit -n $(ulimit -n)"
i=0
for e in "$@"; do
  IFS='|' read -r name group cmd <<<"$e"
  port=$(( BASE_PORT + i )); i=$(( i + 1 ))
  if start_server "$name" "$cmd" "$port" "$OUT_DIR/logs/idle-${name}.log"; then
    sleep 0.5
    j=$(taskset -c "$WRK_CPUS" timeout $(( IDLE_DEADLINE + IDLE_HOLD + 60 )) python3 "$BENCH_DIR/idle10k.py" \
          --port "$port" --sid "$SRV_SID" --n "$IDLE_CONNS" --hold "$IDLE_HOLD" --probes "$PROBES" \
          --reuse-probes "$REUSE_PROBES" --deadline "$IDLE_DEADLINE" --open "$IDLE_OPEN" "${tls_args[@]}" \
          2>>"$OUT_DIR/logs/idle-${name}.client.err")
    stop_server
  else
    j=""
  fi
  [[ -n "$j" ]] || j='{"error": "server did not start or idle10k.py failed"}'
  echo "{\"name\": \"$name\", \"group\": \"$group\", \"result\": $j}" >>"$RES"
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); r=d["result"]
if "error" in r: print("  %s: %s" % (d["name"], r["error"]))
else: print("  %-12s open %d/%d  dRSS %.1f MiB (%d B/conn), %.1f MiB after close  threads %d->%d->%d  new-conn p50/p99/max %s/%s/%s ms  held-conn p99 %s ms (fail %d)" % (d["name"], r["open_after_1s"], r["requested"], r["delta_rss_kb"]/1024, r["bytes_per_conn_rss"], r["delta_rss_closed_kb"]/1024, r["threads_base"], r["threads_loaded"], r["threads_after_probes"], r["probe_ms"]["p50"], r["probe_ms"]["p99"], r["probe_ms"]["max"], r["reuse_ms"]["p99"], r["reuse_fail"]))' "$(tail -1 "$RES")"
done
echo
echo "| bench (command) | measure | figure | target |"
echo "|---|---|---:|---|"
python3 - "$RES" "$IDLE_CONNS" "$IDLE_OPEN" "${IDLE_TLS:-0}" <<'PY'
import json, sys
res, n, how, tls = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
PER_CONN, BACK_SHARE = 1024, 0.1  # issue 18 item 4's target; "back down": within a tenth
for line in open(res):
    d = json.loads(line)
    r = d["result"]
    cmd = "`IDLE_CONNS=%d%s%s bench/idle.sh` %s" % (
        n, "" if how == "burst" else " IDLE_OPEN=" + how, " IDLE_TLS=1" if tls else "", d["name"])
    if "error" in r:
        print("| %s | RSS per idle connection | %s | ≤ 1,024 B |" % (cmd, r["error"]))
        continue
    per, took, left = r["bytes_per_conn_rss"], r["delta_rss_kb"], r["delta_rss_closed_kb"]
    met = per <= PER_CONN and left <= max(took, 0) * BACK_SHARE and r["open_after_1s"] == n
    print("| %s | RSS per idle connection (%d of %d open); left 2 s after they closed | %s B; %+.1f of %+.1f MiB | ≤ 1,024 B; ≤ 10 %% (%s) |"
          % (cmd, r["open_after_1s"], n, format(per, ","), left / 1024, took / 1024, "met" if met else "not met"))
PY
