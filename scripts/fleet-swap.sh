#!/bin/sh
# fleet-swap.sh NEW.so INSTANCE...
# fleet-swap.sh NEW.so -f LIST
#
# Rolls NEW.so out to a fleet of `webserver --pid PIDFILE LIVE.so:SYMBOL` masters, one instance
# at a time: each is swapped with scripts/hot-swap.sh (check NEW in a child process, copy it over
# LIVE atomically, HUP, wait until PIDFILE.status says the new generation is ready), and the next
# one starts only after the previous one reports ready. While one instance swaps, the others
# serve, so a load balancer in front (nginx, deploy/nginx/) never runs out of upstreams — and
# each instance's own swap is zero-downtime too, so one instance would do; two give a margin.
#
# An INSTANCE is `PIDFILE,LIVE.so[,READY_URL]` (in a LIST file: one per line, `#` comments):
#   PIDFILE    the master's --pid file; PIDFILE.status is its readiness (`ready G HASH`);
#   LIVE.so    the library file the master serves (replaced atomically);
#   READY_URL  optional: after the status says ready, GET it (curl) until it answers 2xx — e.g.
#              the instance's health path through the path clients use, so "ready" also means
#              "reachable" before the next instance is touched.
# Instances may live in different directories, users' homes or containers of this machine; for a
# fleet of machines, run this script on each machine in turn (or put one line per machine in a
# LIST whose PIDFILE/LIVE are on shared storage the master reads) — the rule is the same: never
# touch the next instance before the previous one serves the new library.
#
# Every instance is checked (pid file held by a live master, LIVE present) before any is swapped,
# so a typo does not leave half a fleet on each version. If an instance's swap fails, the script
# stops there: the instances before it run NEW, that one and the rest the old library (hot-swap.sh
# restored it), and the exit status is 1. Re-running after a fix is safe (an instance that already
# runs NEW swaps to the same bytes again).
#
# Environment: FLEET_SWAP_SYMBOL (default app); FLEET_SWAP_READY_TIMEOUT seconds per READY_URL
# (default 30); FLEET_SWAP_SETTLE seconds to wait after each instance (default 0: for a load
# balancer whose health checks must see the instance again); HOT_SWAP_PROBE, HOT_SWAP_EXPECT,
# HOT_SWAP_TIMEOUT and WEBSERVER are passed on to hot-swap.sh.
set -eu

usage() {
    echo "usage: $0 NEW.so PIDFILE,LIVE.so[,READY_URL]...   or   $0 NEW.so -f LIST" >&2
    exit 2
}
[ $# -ge 2 ] || usage
new=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
symbol=${FLEET_SWAP_SYMBOL:-app}
ready_timeout=${FLEET_SWAP_READY_TIMEOUT:-30}
settle=${FLEET_SWAP_SETTLE:-0}

[ -f "$new" ] || { echo "fleet-swap: $new: no such file" >&2; exit 1; }

# The instances, one per line, from the arguments or the LIST file.
if [ "$1" = "-f" ]; then
    [ $# -eq 2 ] || usage
    [ -r "$2" ] || { echo "fleet-swap: $2: cannot read the instance list" >&2; exit 1; }
    instances=$(sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "$2" | grep -v '^$' || true)
else
    instances=$(printf '%s\n' "$@")
fi
total=$(printf '%s\n' "$instances" | grep -c . || true)
[ "$total" -gt 0 ] || { echo "fleet-swap: no instances given" >&2; exit 2; }

# Field N (1-based) of a comma-separated instance.
field() {
    printf '%s\n' "$1" | cut -d, -f"$2"
}

# 1. Every instance must be swappable before any is touched.
echo "$instances" | while IFS= read -r instance; do
    pidfile=$(field "$instance" 1)
    live=$(field "$instance" 2)
    if [ -z "$pidfile" ] || [ -z "$live" ]; then
        echo "fleet-swap: '$instance' is not PIDFILE,LIVE.so[,READY_URL]" >&2
        exit 1
    fi
    [ -r "$pidfile" ] || { echo "fleet-swap: $pidfile: cannot read the pid file (is that master running with --pid?)" >&2; exit 1; }
    if command -v flock >/dev/null 2>&1 && flock -n "$pidfile" true 2>/dev/null; then
        echo "fleet-swap: no master holds $pidfile (it is gone); nothing was changed" >&2
        exit 1
    fi
    [ -e "$live" ] || { echo "fleet-swap: $live: no such file (the library $pidfile's master serves)" >&2; exit 1; }
done || exit 1

# Polls READY_URL until it answers 2xx, for up to $ready_timeout seconds.
wait_reachable() {
    end=$(( $(date +%s) + ready_timeout ))
    until curl -fsS -o /dev/null --max-time 5 "$1" </dev/null; do
        if [ "$(date +%s)" -ge "$end" ]; then
            echo "fleet-swap: $1 did not answer 2xx within ${ready_timeout}s" >&2
            return 1
        fi
        sleep 0.2
    done
}

# 2. One instance after the other, each only once the previous one is ready.
index=0
echo "$instances" | while IFS= read -r instance; do
    index=$((index + 1))
    pidfile=$(field "$instance" 1)
    live=$(field "$instance" 2)
    ready_url=$(field "$instance" 3)
    echo "fleet-swap: [$index/$total] swapping $pidfile ($live)"
    if ! "$here/hot-swap.sh" "$new" "$pidfile" "$live" "$symbol" </dev/null; then
        echo "fleet-swap: [$index/$total] $pidfile refused $new; stopped here: instances 1..$((index - 1)) serve it, $index..$total the previous library" >&2
        exit 1
    fi
    if [ -n "$ready_url" ] && ! wait_reachable "$ready_url"; then
        echo "fleet-swap: [$index/$total] $pidfile swapped but not reachable; stopped before the next instance" >&2
        exit 1
    fi
    echo "fleet-swap: [$index/$total] ready"
    if [ "$settle" != 0 ]; then
        sleep "$settle"
    fi
done || exit 1
echo "fleet-swap: all $total instances serve $new"
