#!/usr/bin/env python3
"""bench/peers.sh's table: webserver beside each peer, medians over rounds, ratios and issue 18's
targets.

Usage: peers_summary.py RUN_DIR
Reads RUN_DIR/{hello,axum,flask,wsgi}/scenarios.tsv (bench/scenarios.sh; the group is
"webserver" or "peer") and RUN_DIR/idle/idle10k.jsonl (bench/idle.sh); any may be missing.
Every figure is the median over rounds of the per-round value; "ratio" is webserver / peer.
"""
import csv, json, os, statistics, sys

run = sys.argv[1]
PAIRS = [  # directory, label, peer's name
    ("hello", "hello", "hyper"),
    ("axum", "axum hello (--threads 1)", "axum::serve"),
    ("flask", "Flask hello (--threads 4)", "granian wsgi"),
    ("wsgi", "bare WSGI hello (--threads 4)", "granian wsgi"),
]
# (pair, scenario, metric) -> (comparison, bound, wording): issue 18's "How it must be shown".
TARGETS = {
    ("hello", "keepalive", "cpu"): ("<=", 0.8, "CPU/request <= 0.8x hyper"),
    ("hello", "keepalive", "p99"): ("<=", 1.0, "p99 <= hyper's"),
    ("hello", "close", "per_cpu"): (">=", 1.5, ">= 1.5x hyper per CPU-s"),
    ("axum", "keepalive", "rps"): (">=", 1.0, ">= 1.0x axum::serve"),
    ("axum", "keepalive", "cpu"): ("<=", 1.0, "CPU/request <= axum::serve's"),
    ("flask", "keepalive", "rps"): (">=", 1.0, ">= 1.0x granian"),
    ("flask", "keepalive", "p99"): ("<=", 1.0, "p99 no worse"),
    ("wsgi", "keepalive", "rps"): (">=", 1.0, ">= 1.0x granian"),
    ("wsgi", "keepalive", "p99"): ("<=", 1.0, "p99 no worse"),
}


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def per_round(r):
    rps, req, cpu, p99 = num(r["rps"]), num(r["requests"]), num(r["srv_cpu_s"]), num(r["p99_us"])
    if rps is None or not req:
        return None
    return {
        "rps": rps,
        "p99": p99 / 1000 if p99 is not None else None,
        "cpu": cpu * 1e6 / req if cpu else None,
        "per_cpu": req / cpu if cpu else None,
        "errors": num(r["errors"]) or 0,
    }


METRICS = [  # key, label, format
    ("rps", "requests/s", "{:,.0f}"),
    ("p99", "p99 latency ms", "{:.2f}"),
    ("cpu", "server CPU µs/request", "{:.1f}"),
    ("per_cpu", "requests per server CPU-s", "{:,.0f}"),
]
print("| pair, scenario, measure | webserver | peer | ratio webserver/peer | target |")
print("|---|---:|---:|---:|---|")
for pair, label, peer in PAIRS:
    path = os.path.join(run, pair, "scenarios.tsv")
    if not os.path.exists(path):
        continue
    cells = {}
    for r in csv.DictReader(open(path), delimiter="\t"):
        v = per_round(r)
        if v is not None:
            cells.setdefault((r["scenario"], r["group"]), []).append(v)
    for scen in ("keepalive", "close"):
        scen_label = "keep-alive -c50" if scen == "keepalive" else "Connection: close"
        for key, mlabel, fmt in METRICS:
            med = {}
            for group in ("webserver", "peer"):
                vals = [v[key] for v in cells.get((scen, group), []) if v[key] is not None]
                med[group] = statistics.median(vals) if vals else None
            ws, pr = med["webserver"], med["peer"]
            ratio = ws / pr if ws is not None and pr else None
            target = ""
            if (pair, scen, key) in TARGETS and ratio is not None:
                op, bound, words = TARGETS[(pair, scen, key)]
                met = ratio <= bound if op == "<=" else ratio >= bound
                target = f"{words}: {'met' if met else 'NOT met'}"
            show = lambda x: fmt.format(x) if x is not None else "—"
            print(f"| {label} vs {peer}, {scen_label}: {mlabel} | {show(ws)} | {show(pr)} | "
                  f"{'%.2f' % ratio if ratio is not None else '—'} | {target} |")
        errors = {g: sum(v["errors"] for v in cells.get((scen, g), [])) for g in ("webserver", "peer")}
        if any(errors.values()):
            print(f"| {label}, {scen_label}: wrk errors (all rounds) | {errors['webserver']:.0f} | "
                  f"{errors['peer']:.0f} | | |")

idle_path = os.path.join(run, "idle", "idle10k.jsonl")
if os.path.exists(idle_path):
    print()
    print("| connections opened at once, one request each, then idle | open after 1 s | extra RSS MiB | "
          "RSS bytes/conn | extra RSS 2 s after they closed, MiB | new conn+request p99 ms | target |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for line in open(idle_path):
        if not line.strip():
            continue
        d = json.loads(line)
        r = d["result"]
        if "error" in r:
            print(f"| {d['name']} | {r['error']} | | | | | |")
            continue
        target = ""
        if d["name"] == "webserver":
            target = f"<= 1 KB/conn: {'met' if r['bytes_per_conn_rss'] <= 1024 else 'NOT met'}"
        print(f"| {d['name']} ({r['requested']:,}) | {r['open_after_1s']:,} | {r['delta_rss_kb'] / 1024:.1f} | "
              f"{r['bytes_per_conn_rss']:,} | {r['delta_rss_closed_kb'] / 1024:.1f} | {r['probe_ms']['p99']} | {target} |")
