#!/usr/bin/env python3
"""bench/asgi.sh's table for one app: median requests/s and p99 per (scenario, server) over rounds,
and issue 20's target: webserver >= 1.0x the better of uvicorn and granian on requests/s, with a
p99 no worse than that peer's. The p99 verdict is the median over rounds of webserver's p99 over
that peer's p99 IN THE SAME ROUND: a round's p99s share that round's background load, while the
medians of p99s taken in different rounds swing with it (session 7's quiet run had per-round
ratios from 0.58 to 1.90 around a 1.06 ratio of medians).

Usage: asgi_summary.py SCENARIOS_TSV {bare|fastapi}
"errors" are wrk's. "per CPU-s" is requests per second of the server's own CPU time (all its
processes): less disturbed than requests/s when other processes share the server's core.
"""
import csv, statistics, sys

tsv, kind = sys.argv[1], sys.argv[2]
cells = {}
p99_by_round = {}  # (scenario, group) -> {round: p99 ms}
for r in csv.DictReader(open(tsv), delimiter="\t"):
    try:
        cpu = float(r["srv_cpu_s"] or 0)
        cells.setdefault((r["scenario"], r["group"]), []).append(
            (float(r["rps"]), float(r["p99_us"]) / 1000, int(r["errors"] or 0),
             float(r["requests"]) / cpu if cpu > 0 else 0.0))
        p99_by_round.setdefault((r["scenario"], r["group"]), {})[r["round"]] = float(r["p99_us"]) / 1000
    except (TypeError, ValueError):
        pass
verdict = lambda ok: "met" if ok else "NOT met"
# keepalive first, as bench/asgi.sh runs them (alphabetical order put close first, and a results
# table once took the first block for keep-alive).
ORDER = {"keepalive": 0, "close": 1}
for scen in sorted({s for s, _ in cells}, key=lambda s: (ORDER.get(s, 2), s)):
    print(f"{kind} hello, {scen}:")
    med = {}
    for (s, group), rs in sorted(cells.items()):
        if s != scen:
            continue
        rps = statistics.median(x[0] for x in rs)
        p99 = statistics.median(x[1] for x in rs)
        med[group] = (rps, p99)
        per_cpu = statistics.median(x[3] for x in rs)
        print(f"  {group:10} {rps:10.0f} req/s  p99 {p99:8.2f} ms  {per_cpu:8.0f} per CPU-s  "
              f"errors {sum(x[2] for x in rs)}  ({len(rs)} rounds)")
    peers = {g: v for g, v in med.items() if g != "webserver"}
    if "webserver" not in med or not peers:
        continue
    ws_rps, ws_p99 = med["webserver"]
    best = max(peers, key=lambda g: peers[g][0])
    ratio = ws_rps / peers[best][0]
    for g in sorted(peers):
        print(f"  webserver / {g}: {ws_rps / peers[g][0]:.2f}x req/s, p99 {ws_p99:.2f} vs {peers[g][1]:.2f} ms")
    ours, theirs = p99_by_round[(scen, "webserver")], p99_by_round[(scen, best)]
    per_round = [ours[k] / theirs[k] for k in sorted(ours, key=int) if k in theirs and theirs[k] > 0]
    p99_ratio = statistics.median(per_round) if per_round else float("inf")
    print(f"  p99 webserver / {best}, per round: {' '.join(f'{x:.2f}' for x in per_round)}; "
          f"median {p99_ratio:.2f}")
    print(f"  target: webserver / better peer ({best}) = {ratio:.2f}x, >= 1.0x: {verdict(ratio >= 1.0)}; "
          f"p99 no worse (median per-round ratio <= 1.0): {verdict(p99_ratio <= 1.0)}")
