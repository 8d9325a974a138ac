#!/bin/sh
# hot-swap.sh NEW.so PIDFILE LIVE.so [SYMBOL]
#
# Safely replace the app library a running `webserver --pid PIDFILE LIVE.so:SYMBOL` serves:
#   1. `webserver check NEW.so:SYMBOL` (in a child process: a crashing library is reported, and
#      nothing is touched if the check fails). It requests `GET /` and passes any status below 500
#      unless $HOT_SWAP_PROBE names another path (e.g. /healthz) and $HOT_SWAP_EXPECT the statuses
#      that pass (e.g. 200, 200,204 or 2xx): they become `check --probe` and `--expect`;
#   2. copy NEW.so over LIVE.so atomically (temp file in LIVE's directory, then rename), so the
#      master never reads a half-written file;
#   3. SIGHUP the master (pid from PIDFILE);
#   4. wait (up to $HOT_SWAP_TIMEOUT seconds, default 60) for PIDFILE.status to report the new
#      generation: `ready G HASH` (exit 0) or `failed G MESSAGE` (printed; exit 1). A master
#      started with --canary says `canary G HASH SECS` first: the wait is extended by the SECS
#      of its window, and a canary rolled back is a `failed` like any other. On failure, or
#      when no outcome arrives, the previous LIVE.so is put back (atomically, and said on stderr),
#      so a restart or `--reload` never picks up the refused library; the old generation keeps
#      serving throughout.
#
# The webserver binary: $WEBSERVER, else `webserver` on PATH, else ../target/release/webserver
# beside this script.
set -eu

usage() {
    echo "usage: $0 NEW.so PIDFILE LIVE.so [SYMBOL=app]" >&2
    exit 2
}
[ $# -ge 3 ] && [ $# -le 4 ] || usage
new=$1
pidfile=$2
live=$3
symbol=${4:-app}
status_file="$pidfile.status"
timeout=${HOT_SWAP_TIMEOUT:-60}

if [ -n "${WEBSERVER:-}" ]; then
    ws=$WEBSERVER
elif command -v webserver >/dev/null 2>&1; then
    ws=$(command -v webserver)
else
    ws="$(cd "$(dirname "$0")" && pwd)/../target/release/webserver"
fi
[ -x "$ws" ] || { echo "hot-swap: cannot find the webserver binary (set WEBSERVER)" >&2; exit 2; }
[ -f "$new" ] || { echo "hot-swap: $new: no such file" >&2; exit 1; }
[ -r "$pidfile" ] || { echo "hot-swap: $pidfile: cannot read the pid file (is the server running with --pid?)" >&2; exit 1; }
# A running master holds an exclusive flock on its pid file: one nobody holds was left by a
# master that is gone (kill -9), and the pid in it may belong to another process by now.
if command -v flock >/dev/null 2>&1 && flock -n "$pidfile" true 2>/dev/null; then
    echo "hot-swap: no master holds $pidfile (left by a master that is gone); nothing was changed" >&2
    exit 1
fi
pid=$(cat "$pidfile")
kill -0 "$pid" 2>/dev/null || { echo "hot-swap: no process $pid (from $pidfile)" >&2; exit 1; }

# 1. Check the new library the way a worker would load it, with the caller's health check.
set -- check
if [ -n "${HOT_SWAP_PROBE:-}" ]; then
    set -- "$@" --probe "$HOT_SWAP_PROBE"
fi
if [ -n "${HOT_SWAP_EXPECT:-}" ]; then
    set -- "$@" --expect "$HOT_SWAP_EXPECT"
fi
echo "hot-swap: checking $new:$symbol (GET ${HOT_SWAP_PROBE:-/}, passing ${HOT_SWAP_EXPECT:-any status below 500})"
if ! "$ws" "$@" "$new:$symbol"; then
    echo "hot-swap: $new failed the check; nothing was changed" >&2
    exit 1
fi

# The generation that was current before the swap (0 if there is no status yet).
generation_of() {
    [ -r "$status_file" ] || { echo 0; return; }
    set -- $(head -n 1 "$status_file" 2>/dev/null || true)
    echo "${2:-0}"
}
before=$(generation_of)

# 2. Copy atomically: a temp file in the same directory (same filesystem), then rename. The
#    previous LIVE is kept (a hard link, else a copy) until the outcome is known.
tmp="$live.tmp.$$"
previous="$live.previous.$$"
trap 'rm -f "$tmp" "$previous"' EXIT INT TERM
if [ -e "$live" ]; then
    ln -f "$live" "$previous" 2>/dev/null || cp -p "$live" "$previous"
fi
cp "$new" "$tmp"
mv -f "$tmp" "$live"

# Put the previous LIVE back after a refused swap (or remove the refused one if there was none).
restore() {
    if [ -e "$previous" ]; then
        mv -f "$previous" "$live"
        echo "hot-swap: restored the previous $live" >&2
    else
        rm -f "$live"
        echo "hot-swap: removed the refused $live (there was no previous one)" >&2
    fi
}

# 3. Ask the master to swap.
kill -HUP "$pid"

# 4. Wait for the outcome of a newer generation.
end=$(( $(date +%s) + timeout ))
judged=
while :; do
    line=$(head -n 1 "$status_file" 2>/dev/null || true)
    set -- $line
    state=${1:-}
    gen=${2:-0}
    if [ "$gen" -gt "$before" ] 2>/dev/null; then
        case $state in
            ready)
                echo "hot-swap: $line"
                exit 0
                ;;
            failed)
                echo "hot-swap: $line" >&2
                restore
                exit 1
                ;;
            canary)
                if [ "$judged" != "$gen" ]; then
                    judged=$gen
                    echo "hot-swap: $line (a canary, judged after ${4:-0}s)"
                    end=$(( end + ${4:-0} ))
                fi
                ;;
        esac
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "hot-swap: the master ($pid) exited during the swap" >&2
        restore
        exit 1
    fi
    if [ "$(date +%s)" -ge "$end" ]; then
        echo "hot-swap: no outcome after ${timeout}s; last status: ${line:-none}" >&2
        restore
        exit 1
    fi
    sleep 0.1
done
