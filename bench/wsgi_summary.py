#!/usr/bin/env python3
"""bench/wsgi.sh's table for one app: median requests/s and p99 per (scenario, server) over rounds,
and issue 11's targets: webserver / best gunicorn (bare WSGI hello ≥ 3×, Flask hello ≥ 1.5×),
webserver / uWSGI (bare hello ≥ 1×), and for Flask a p99 lower than every peer's.

Usage: wsgi_summary.py SCENARIOS_TSV {bare|flask}
"errors" are wrk's. "per CPU-s" is requests per second of the server's own CPU time (all its
processes): less disturbed than requests/s when other processes share the server's core. uWSGI (--http-socket) shows one read error per request, keep-alive or not: it
closes the connection after every response, which wrk counts as an error after counting the
complete response; its requests/s are those responses.
"""
import csv, statistics, sys

tsv, kind = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(tsv), delimiter="\t"))
cells = {}
for r in rows:
    try:
        cells.setdefault((r["scenario"], r["group"]), []).append(
            (float(r["rps"]), float(r["p99_us"]) / 1000, int(r["errors"] or 0),
             float(r["requests"]) / float(r["srv_cpu_s"]) if float(r["srv_cpu_s"] or 0) > 0 else 0.0))
    except (TypeError, ValueError):
        pass
verdict = lambda ok: "met" if ok else "NOT met"
for scen in sorted({s for s, _ in cells}):
    print(f"{scen}:")
    med = {}
    for (s, group), rs in sorted(cells.items()):
        if s != scen:
            continue
        rps = statistics.median(x[0] for x in rs)
        p99 = statistics.median(x[1] for x in rs)
        med[group] = (rps, p99)
        per_cpu = statistics.median(x[3] for x in rs)
        print(f"  {group:18} {rps:10.0f} req/s  p99 {p99:8.2f} ms  {per_cpu:8.0f} per CPU-s  "
              f"errors {sum(x[2] for x in rs)}  ({len(rs)} rounds)")
    if "webserver" not in med:
        continue
    ws_rps, ws_p99 = med["webserver"]
    peers = {g: v for g, v in med.items() if g != "webserver"}
    if peers:
        best = max(peers, key=lambda g: peers[g][0])
        print(f"  webserver / best peer ({best}): {ws_rps / peers[best][0]:.2f}x")
    gun = {g: v for g, v in peers.items() if g.startswith("gunicorn")}
    if gun:
        best = max(gun, key=lambda g: gun[g][0])
        want = 3.0 if kind == "bare" else 1.5
        ratio = ws_rps / gun[best][0]
        print(f"  target: webserver / best gunicorn ({best}) = {ratio:.2f}x, >= {want}x: {verdict(ratio >= want)}")
    if kind == "bare" and "uwsgi" in peers:
        ratio = ws_rps / peers["uwsgi"][0]
        print(f"  target: webserver / uwsgi = {ratio:.2f}x, >= 1x: {verdict(ratio >= 1)}")
    if kind == "flask" and peers:
        lowest = min(peers, key=lambda g: peers[g][1])
        print(f"  target: p99 lower than every peer: webserver {ws_p99:.2f} ms vs lowest peer ({lowest}) "
              f"{peers[lowest][1]:.2f} ms: {verdict(ws_p99 < peers[lowest][1])}")
