#!/usr/bin/env python3
"""Final table of bench/run.sh: one row per scenario, one column per server, ratio last.

Usage: summary.py RUN_DIR
Reads RUN_DIR/compare/scenarios.tsv and RUN_DIR/scen/scenarios.tsv (both bench/scenarios.sh:
keep-alive and close; pipelined, 64 KiB, 1 MiB POST), RUN_DIR/idle/idle10k.jsonl (bench/idle.sh)
and RUN_DIR/abi.txt (benches/abi.rs); any may be missing.
Every figure is the median over rounds of the per-round value. "ratio" = webserver / hyper
(in parentheses: webserver --workers 2 / hyper); where hyper has no figure, the ratio is to nginx
and says so. Targets are issue 5's.
"""
import csv, json, os, statistics, sys

run = sys.argv[1]
GROUPS = ["webserver", "webserver-w2", "hyper", "nginx"]
med = lambda xs: statistics.median(xs) if xs else None


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def rows(path):
    return list(csv.DictReader(open(path), delimiter="\t")) if os.path.exists(path) else []


cmp_rows = rows(os.path.join(run, "compare", "scenarios.tsv"))
scen_rows = rows(os.path.join(run, "scen", "scenarios.tsv"))
idle_path = os.path.join(run, "idle", "idle10k.jsonl")
idle = {}
if os.path.exists(idle_path):
    for line in open(idle_path):
        if line.strip():
            d = json.loads(line)
            idle[d["group"]] = d["result"]

# metric(group, scenario) -> median over rounds
def cmp_metric(group, scen, f):
    vals = []
    for r in cmp_rows:
        if r["group"] == group and r["scenario"] == scen:
            v = f(r)
            if v is not None:
                vals.append(v)
    return med(vals)


def scen_metric(group, scen, f):
    vals = []
    for r in scen_rows:
        if r["group"] == group and r["scenario"] == scen:
            v = f(r)
            if v is not None:
                vals.append(v)
    return med(vals)


def ok(r):
    return num(r["rps"]) is not None and num(r["requests"])


rps = lambda r: num(r["rps"]) if ok(r) else None
p99 = lambda r: num(r["p99_us"]) / 1000 if ok(r) and num(r["p99_us"]) is not None else None
cpu_us = lambda r: num(r["srv_cpu_s"]) * 1e6 / num(r["requests"]) if ok(r) and num(r["srv_cpu_s"]) else None
per_cpu_s = lambda r: num(r["requests"]) / num(r["srv_cpu_s"]) if ok(r) and num(r["srv_cpu_s"]) else None
errs = lambda r: num(r["errors"])


def payload_gbs(nbytes):
    return lambda r: num(r["rps"]) * nbytes / 1e9 if ok(r) else None


table = []  # (scenario, {group: value}, fmt, higher_is_better, target)


def add(label, getter, fmt, higher=True, target=""):
    vals = {g: getter(g) for g in GROUPS}
    table.append((label, vals, fmt, higher, target))


add("keep-alive -c50: requests/s", lambda g: cmp_metric(g, "keepalive", rps), "{:,.0f}", True, "≥ 0.95× hyper")
add("keep-alive -c50: p99 latency ms", lambda g: cmp_metric(g, "keepalive", p99), "{:.2f}", False, "≤ hyper")
add("keep-alive -c50: server CPU µs/request", lambda g: cmp_metric(g, "keepalive", cpu_us), "{:.1f}", False, "")
add("Connection: close: requests/s", lambda g: cmp_metric(g, "close", rps), "{:,.0f}", True, "(wrk-bound)")
add("Connection: close: requests per server CPU-s", lambda g: cmp_metric(g, "close", per_cpu_s), "{:,.0f}", True, "≥ 1.2× hyper")
add("pipelined depth 16: requests/s", lambda g: scen_metric(g, "pipeline16", rps), "{:,.0f}", True, "")
add("pipelined depth 16: server CPU µs/request", lambda g: scen_metric(g, "pipeline16", cpu_us), "{:.2f}", False, "")
add("64 KiB response: payload GB/s (-c16)", lambda g: scen_metric(g, "body64k", payload_gbs(65536)), "{:.3f}", True, "≥ 1 GB/s")
add("1 MiB POST: payload GB/s (-c16)", lambda g: scen_metric(g, "post1m", payload_gbs(1 << 20)), "{:.3f}", True, "≥ 1 GB/s")


def idle_get(g, f):
    r = idle.get(g)
    if not r or "error" in r:
        return None
    return f(r)


n_idle = next((r.get("requested") for r in idle.values() if "requested" in r), 10000)
add(f"{n_idle:,} idle conns: extra RSS MiB", lambda g: idle_get(g, lambda r: r["delta_rss_kb"] / 1024), "{:.1f}", False, "< 64 MiB")
add(f"{n_idle:,} idle conns: RSS bytes/conn", lambda g: idle_get(g, lambda r: r["bytes_per_conn_rss"]), "{:,.0f}", False, "")
add(f"{n_idle:,} idle conns: still open after 1 s", lambda g: idle_get(g, lambda r: r["open_after_1s"]), "{:,.0f}", True, f"{n_idle:,}")
add(f"{n_idle:,} idle conns: new conn+request p50 ms", lambda g: idle_get(g, lambda r: r["probe_ms"]["p50"]), "{:.3f}", False, "")
add(f"{n_idle:,} idle conns: new conn+request p99 ms", lambda g: idle_get(g, lambda r: r["probe_ms"]["p99"]), "{:.3f}", False, "< 10 ms")
add(f"{n_idle:,} idle conns: new conn+request max ms", lambda g: idle_get(g, lambda r: r["probe_ms"]["max"]), "{:.3f}", False, "")


abi_path = os.path.join(run, "abi.txt")
if os.path.exists(abi_path):
    for line in open(abi_path):
        kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
        what = line.split()[0]
        if "ns_per_request" in kv:
            table.append((f"in-memory {what}: ns/request (allocs/request {kv.get('allocs_per_request', '?')})",
                          {"webserver": float(kv["ns_per_request"])}, "{:.0f}", False,
                          "< 1,000 ns" if what == "environ+call+encode" else ""))


def fmt(v, f):
    return "—" if v is None else f.format(v)


def ratio(vals, g):
    for ref in ("hyper", "nginx"):
        if vals.get(g) is not None and vals.get(ref):
            return vals[g] / vals[ref], ref
    return None, None


print("| scenario | webserver | webserver -w2 | hyper | nginx | ratio webserver/hyper (-w2) | target |")
print("|---|---:|---:|---:|---:|---:|---|")
for label, vals, f, higher, target in table:
    r1, ref1 = ratio(vals, "webserver")
    r2, ref2 = ratio(vals, "webserver-w2")
    if r1 is None and r2 is None:
        rs = "—"
    else:
        rs = fmt(r1, "{:.2f}") + (f" ({r2:.2f})" if r2 is not None else "")
        if (ref1 or ref2) == "nginx":
            rs += " vs nginx"
    print(f"| {label} | {fmt(vals.get('webserver'), f)} | {fmt(vals.get('webserver-w2'), f)} | {fmt(vals.get('hyper'), f)} "
          f"| {fmt(vals.get('nginx'), f)} | {rs} | {target} |")

# Derived lines the table's columns cannot hold.
ka = cmp_metric("webserver", "keepalive", rps)
pl = scen_metric("webserver", "pipeline16", rps)
extra = []
if ka and pl:
    extra.append(f"- pipelined / own keep-alive (webserver): {pl / ka:.2f}× (target ≥ 2×)")
ka2 = cmp_metric("webserver-w2", "keepalive", rps)
pl2 = scen_metric("webserver-w2", "pipeline16", rps)
if ka2 and pl2:
    extra.append(f"- pipelined / own keep-alive (webserver -w2): {pl2 / ka2:.2f}×")
for g in GROUPS:
    r = idle.get(g)
    if r and "error" not in r:
        extra.append(f"- idle {g}: threads {r['threads_base']} before → {r['threads_loaded']} with "
                     f"{r['open_after_1s']:,} conns → {r['threads_after_probes']} after probes; "
                     f"held-conn request p99 {r['reuse_ms']['p99']} ms ({r['reuse_fail']} failed of {r['reuse_probes']}); "
                     f"open after hold {r['open_after_hold']:,}; opening took {r['open_secs']} s")
tot_err = {}
for rr in cmp_rows + scen_rows:
    g = rr.get("group") or rr["name"]
    e = num(rr.get("errors"))
    if e:
        tot_err[(g, rr["scenario"])] = tot_err.get((g, rr["scenario"]), 0) + e
for (g, s), e in sorted(tot_err.items()):
    extra.append(f"- wrk errors: {g}/{s}: {e:.0f} (summed over rounds)")
if extra:
    print()
    print("\n".join(extra))
