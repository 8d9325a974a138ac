#!/usr/bin/env python3
"""Hold N idle keep-alive connections against one server and measure what they cost.

Extends ../shared/bench/idle_conns.py (imported from $SHARED_BENCH or --shared; its memory and
socket helpers are reused) with the issue's other two questions:

  * latency of a NEW request on a NEW connection while the N are held (--probes sequential
    connect + GET + full response + close; p50/p99/max in ms), and of a request on a few of the
    held connections themselves (--reuse-probes; proves they were really kept alive);
  * the server's thread count (sum of Threads: over its session's processes) before the
    connections, with them open, and after the probes.

Steps: base memory/threads -> open N connections, one request each (serially, bounded by
--deadline) -> sleep 1 s -> memory/threads/open count -> probes -> threads -> hold until --hold s
after opening -> open count -> close all.  Only 127.0.0.1 is contacted; every socket op has a
timeout.  Prints one JSON line.

Usage: idle10k.py --port P --sid SID [--n 10000] [--hold 3] [--probes 200] [--reuse-probes 50]
                  [--deadline 90] [--shared DIR]
"""
import argparse, json, os, random, resource, socket, statistics, sys, time


def threads(sid, idle):
    n = 0
    for p in idle.session_pids(sid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("Threads:"):
                        n += int(line.split()[1])
        except OSError:
            pass
    return n


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sid", type=int, required=True)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--hold", type=float, default=3.0)
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--reuse-probes", type=int, default=50)
    ap.add_argument("--deadline", type=float, default=90.0)
    ap.add_argument("--sock-timeout", type=float, default=2.0)
    ap.add_argument("--shared", default=os.environ.get("SHARED_BENCH",
                    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench")))
    a = ap.parse_args()
    sys.path.insert(0, a.shared)
    import idle_conns as idle  # noqa: E402  (session_pids, mem_kb, read_response, count_open, REQ)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(a.n + 200, hard), hard))

    base = idle.mem_kb(a.sid)
    thr_base = threads(a.sid, idle)
    t0 = time.monotonic()
    socks, fail_connect, fail_req = [], 0, 0
    for _ in range(a.n):
        if time.monotonic() - t0 > a.deadline:
            break
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(a.sock_timeout)
        try:
            s.connect(("127.0.0.1", a.port))
        except OSError:
            fail_connect += 1
            s.close()
            continue
        try:
            s.sendall(idle.REQ)
            ok = idle.read_response(s)
        except OSError:
            ok = False
        if not ok:
            fail_req += 1
        socks.append(s)
    t_open = time.monotonic() - t0
    time.sleep(1.0)
    loaded = idle.mem_kb(a.sid)
    thr_loaded = threads(a.sid, idle)
    open_1s = idle.count_open(socks)

    # New request on a new connection, while the N are held.
    lat, probe_fail = [], 0
    for _ in range(a.probes):
        t = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", a.port), timeout=a.sock_timeout) as s:
                s.sendall(idle.REQ)
                ok = idle.read_response(s)
        except OSError:
            ok = False
        if ok:
            lat.append((time.perf_counter() - t) * 1000)
        else:
            probe_fail += 1
    # A request on some of the held connections (oldest first: the ones a timeout would close).
    reuse_lat, reuse_fail = [], 0
    picks = socks[: a.reuse_probes // 2] + random.sample(socks, min(len(socks), a.reuse_probes - a.reuse_probes // 2))
    for s in picks:
        t = time.perf_counter()
        try:
            s.sendall(idle.REQ)
            ok = idle.read_response(s)
        except OSError:
            ok = False
        if ok:
            reuse_lat.append((time.perf_counter() - t) * 1000)
        else:
            reuse_fail += 1
    thr_after = threads(a.sid, idle)
    time.sleep(max(0.0, t0 + t_open + a.hold - time.monotonic()))
    held = idle.mem_kb(a.sid)
    open_end = idle.count_open(socks)
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
    r3 = lambda x: None if x is None else round(x, 3)
    out = {
        "requested": a.n, "connected": len(socks), "req_ok": len(socks) - fail_req,
        "fail_connect": fail_connect, "fail_req": fail_req,
        "open_after_1s": open_1s, "open_after_hold": open_end,
        "open_secs": round(t_open, 2), "hold_s": a.hold,
        "base": base, "loaded": loaded, "held": held,
        "delta_rss_kb": loaded["rss_kb"] - base["rss_kb"],
        "delta_pss_kb": loaded["pss_kb"] - base["pss_kb"],
        "bytes_per_conn_pss": round((loaded["pss_kb"] - base["pss_kb"]) * 1024 / max(1, open_1s)),
        "bytes_per_conn_rss": round((loaded["rss_kb"] - base["rss_kb"]) * 1024 / max(1, open_1s)),
        "threads_base": thr_base, "threads_loaded": thr_loaded, "threads_after_probes": thr_after,
        "probes": a.probes, "probe_fail": probe_fail,
        "probe_ms": {"p50": r3(pct(lat, 50)), "p99": r3(pct(lat, 99)), "max": r3(max(lat) if lat else None),
                     "mean": r3(statistics.mean(lat) if lat else None)},
        "reuse_probes": len(picks), "reuse_fail": reuse_fail,
        "reuse_ms": {"p50": r3(pct(reuse_lat, 50)), "p99": r3(pct(reuse_lat, 99)),
                     "max": r3(max(reuse_lat) if reuse_lat else None)},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
