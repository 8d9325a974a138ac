#!/usr/bin/env bash
# access_log.sh — what writing the access log costs: keep-alive requests/s of the same server
# (release build, hello:app, one worker) with the access log off, on (Apache combined, to a file)
# and on as JSON lines, interleaved in one run (bench/compare.sh: medians, ratios on/off, and the
# server's CPU time per request, which a busy shared machine disturbs less than the rate). The
# goal (issue 13): on/off >= 0.90 (at most 10 % of keep-alive throughput).
#
# Usage:  bench/access_log.sh            (ROUNDS=5 DURATION=3: about 1.5 minutes)
# Env: as bench/compare.sh.
set -uo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_FILE="${TMPDIR:-/tmp}/webserver-access-log-$$.log"
trap 'rm -f "$LOG_FILE"' EXIT
# Each measurement says how many lines it logged, then starts on an empty file.
export AFTER_EACH="n=0; [ -f '$LOG_FILE' ] && n=\$(wc -l <'$LOG_FILE'); rm -f '$LOG_FILE'; echo \"(\$n access-log lines)\""
"$BENCH_DIR/compare.sh" access-log "req/s >= 0.90x off" "off=" \
  "combined=--access-logfile $LOG_FILE" \
  "json=--access-logfile $LOG_FILE --access-logformat json"
