#!/usr/bin/env bash
# stats_cost.sh — what `--stats` costs per request (issue 23: the latency histograms, always on
# with --stats, at most 2 % of the CPU per request on the keep-alive hello): the same server
# without and with `--stats` (counters and histograms in each serving thread's shard), measured
# as bench/access_log.sh measures the access log (bench/compare.sh: interleaved rounds, medians,
# server CPU µs per request and its ratio to `off`). Nothing scrapes during the run.
#
# Usage:  bench/stats_cost.sh   (ROUNDS=5 DURATION=3: about a minute; env as bench/compare.sh)
# For instructions rather than time: bench/callgrind.sh runs `hello` with and without --stats.
set -uo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SOCK="${TMPDIR:-/tmp}/webserver-stats-cost-$$.sock"
trap 'rm -f "$SOCK"' EXIT
"$BENCH_DIR/compare.sh" stats "CPU/request <= 1.02x off" "off=" "stats=--stats unix:$SOCK"
