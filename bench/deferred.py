#!/usr/bin/env python3
"""Clients of bench/deferred.sh: deferred (parked) requests of the axum app, one JSON line each.

  sleep   --n 10000 --ms 1000   N concurrent `GET /sleep?ms=MS` (one connection each, all opened
          and sent before the first answer can come): statuses, wall time from the first connect
          to the last answer, how many were in flight at once, per-request latency, server RSS
          (base, sampled peak, VmHWM) and thread count (before, max during, after).
  sse     --n 1000 --events 100  N concurrent `GET /events?n=EVENTS` (one event per 100 ms):
          events delivered per stream (ids 0..EVENTS-1 in order), stream durations, threads and
          RSS before, during (min/max) and after.
  upload  --bytes 1073741824     one streamed `POST /upload` with Content-Length: status, the
          byte count the handler reports, throughput, server RSS (base, sampled peak, VmHWM).
  table   JSONL [SCENARIOS_TSV]  the final table (with targets) from the JSON lines above and
          bench/scenarios.sh's rows for the axum hello route (groups webserver / axum-serve).

Server memory and threads are summed over the server's session (--sid: master and workers).
Opening connections is windowed (--connect-window pending handshakes at most) so the server's
listen backlog never overflows into SYN retransmits (1 s each), which would measure the kernel,
not the server; every request stays in flight together all the same (reported as max_in_flight).
Only 127.0.0.1 is contacted; every wait is bounded (--deadline).
"""
import argparse, csv, errno, json, os, select, socket, statistics, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idle10k import session_pids  # noqa: E402  (bench/ is not a package)

HOST = "127.0.0.1"
READ_SIZE = 65536
SAMPLE_SECS = 0.05
MIB = 1024 * 1024
# The axum app's /events interval.
EVENT_SECS = 0.1


class Server:
    """Memory and threads of the server's session; the pids are found once (re-found if one goes)."""

    def __init__(self, sid):
        self.sid = sid
        self.pids = session_pids(sid)
        self.reset_peak()

    def reset_peak(self):
        """Resets VmHWM (peak RSS) to the current RSS (`5` > /proc/PID/clear_refs), so the peak
        reported is this run's, not the start-up's (loading the app). Best effort: without the
        permission VmHWM stays the peak since start, an upper bound."""
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                pass

    def _status(self, keys):
        totals = dict.fromkeys(keys, 0)
        for attempt in range(2):
            try:
                for pid in self.pids:
                    with open(f"/proc/{pid}/status") as f:
                        for line in f:
                            k = line.split(":", 1)[0]
                            if k in totals:
                                totals[k] += int(line.split()[1])
                return totals
            except (OSError, ValueError):
                totals = dict.fromkeys(keys, 0)
                self.pids = session_pids(self.sid)
        return totals

    def snapshot(self):
        s = self._status(("VmRSS", "VmHWM", "Threads"))
        return {"rss_kb": s["VmRSS"], "hwm_kb": s["VmHWM"], "threads": s["Threads"]}


class Sampler:
    """Samples the server every SAMPLE_SECS on its own thread: peak RSS, min/max threads."""

    def __init__(self, server):
        self.server = server
        self.peak_rss_kb = 0
        self.min_threads = None
        self.max_threads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            s = self.server.snapshot()
            self.peak_rss_kb = max(self.peak_rss_kb, s["rss_kb"])
            self.max_threads = max(self.max_threads, s["threads"])
            self.min_threads = s["threads"] if self.min_threads is None else min(self.min_threads, s["threads"])
            self._stop.wait(SAMPLE_SECS)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def listen_drops():
    """The kernel's count of SYNs dropped on full accept queues (TcpExt ListenDrops), machine-wide:
    non-zero growth during a run means some connections waited for a SYN retransmit (1 s)."""
    with open("/proc/net/netstat") as f:
        lines = [line.split() for line in f if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1])).get("ListenDrops", 0)) if len(lines) >= 2 else 0


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q / 100 * len(xs)))], 3)


def status_of(head):
    try:
        return int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def dechunk(body):
    """The payload of a complete chunked body (None if it is cut short)."""
    out, at = bytearray(), 0
    while True:
        eol = body.find(b"\r\n", at)
        if eol < 0:
            return None
        size = int(body[at:eol].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        start = eol + 2
        if len(body) < start + size + 2:
            return None
        out += body[start:start + size]
        at = start + size + 2


def many(port, request, n, window, deadline, midway=None):
    """Opens n connections (at most `window` handshakes pending at once), sends `request` on each
    as soon as it is connected and reads each to EOF (the request says close); a plain epoll loop,
    since asyncio's streams cost the client more per connection than the server under test.
    Returns (results, stats): results per connection are (sent, answered, bytes) or (error,);
    midway = (seconds, callback) is called once that long after the start."""
    ep = select.epoll()
    conns = {}  # fd -> [socket, sent_at or None, received bytearray]
    results, opened, connecting, in_flight, max_in_flight = [], 0, 0, 0, 0
    t0 = time.monotonic()
    all_sent = None
    try:
        while (opened < n or conns) and time.monotonic() - t0 < deadline:
            while opened < n and connecting < window:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                opened += 1
                err = sock.connect_ex((HOST, port))
                if err not in (0, errno.EINPROGRESS):
                    results.append((f"connect: {os.strerror(err)}",))
                    sock.close()
                    continue
                conns[sock.fileno()] = [sock, None, bytearray()]
                ep.register(sock.fileno(), select.EPOLLOUT)
                connecting += 1
            if midway and time.monotonic() - t0 >= midway[0]:
                midway[1](in_flight)
                midway = None
            for fd, _ in ep.poll(SAMPLE_SECS):
                c = conns[fd]
                sock = c[0]
                try:
                    if c[1] is None:
                        connecting -= 1
                        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            raise OSError(err, os.strerror(err))
                        sock.sendall(request)  # a few dozen bytes: the socket buffer takes them
                        c[1] = time.monotonic()
                        in_flight += 1
                        max_in_flight = max(max_in_flight, in_flight)
                        if opened == n and connecting == 0:
                            all_sent = c[1] - t0
                        ep.modify(fd, select.EPOLLIN)
                        continue
                    data = sock.recv(READ_SIZE)
                    if data:
                        c[2] += data
                        continue
                    in_flight -= 1
                    results.append((c[1], time.monotonic(), bytes(c[2])))
                except OSError as e:
                    if c[1] is not None:
                        in_flight -= 1
                    results.append((f"{type(e).__name__}: {e.strerror or e}",))
                ep.unregister(fd)
                sock.close()
                del conns[fd]
    finally:
        for c in conns.values():
            results.append(("timeout" if c[1] is not None else "connect timeout",))
            c[0].close()
        ep.close()
    return results, {"max_in_flight": max_in_flight, "all_sent_s": None if all_sent is None else round(all_sent, 3)}


def sleep_cmd(a):
    server = Server(a.sid)
    base = server.snapshot()
    path = a.path.format(ms=a.ms)
    request = (f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").encode()
    drops = listen_drops()
    with Sampler(server) as sampler:
        t0 = time.monotonic()
        results, state = many(a.port, request, a.n, a.connect_window, a.deadline)
        wall = time.monotonic() - t0
    time.sleep(1)
    after = server.snapshot()
    ok, failures, latencies, first_answer, last_sent = 0, {}, [], None, None
    for r in results:
        if len(r) == 1:
            failures[r[0]] = failures.get(r[0], 0) + 1
            continue
        sent, answered, data = r
        status = status_of(data)
        if status == 200 and data.endswith(a.expect.format(ms=a.ms).encode()):
            ok += 1
        else:
            failures[f"status {status}"] = failures.get(f"status {status}", 0) + 1
        latencies.append(answered - sent)
        first_answer = answered if first_answer is None else min(first_answer, answered)
        last_sent = sent if last_sent is None else max(last_sent, sent)
    print(json.dumps({
        "test": a.label, "n": a.n, "ms": a.ms, "ok": ok, "failures": failures,
        "wall_s": round(wall, 3), "max_in_flight": state["max_in_flight"], "all_sent_s": state["all_sent_s"],
        "listen_drops": listen_drops() - drops,
        "all_sent_before_first_answer": bool(last_sent and first_answer and last_sent < first_answer),
        "latency_s": {"p50": pct(latencies, 50), "p99": pct(latencies, 99), "max": pct(latencies, 100)},
        "rss_base_kb": base["rss_kb"], "rss_peak_kb": sampler.peak_rss_kb, "hwm_kb": after["hwm_kb"],
        "rss_after_kb": after["rss_kb"],
        "rss_growth_kb": max(sampler.peak_rss_kb, after["hwm_kb"]) - base["rss_kb"],
        "threads": [base["threads"], sampler.max_threads, after["threads"]],
    }))


def sse_cmd(a):
    server = Server(a.sid)
    base = server.snapshot()
    request = (f"GET /events?n={a.events} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").encode()
    during = {}

    def midway(in_flight):  # threads and memory with every stream open
        during.update(server.snapshot(), in_flight=in_flight)

    with Sampler(server) as sampler:
        t0 = time.monotonic()
        results, state = many(a.port, request, a.n, a.connect_window, a.deadline,
                              (a.events * EVENT_SECS / 2, midway))
        wall = time.monotonic() - t0
    time.sleep(1)
    after = server.snapshot()
    expected = [str(i) for i in range(a.events)]
    complete, events, failures, durations = 0, 0, {}, []
    for r in results:
        if len(r) == 1:
            failures[r[0]] = failures.get(r[0], 0) + 1
            continue
        sent, done, data = r
        head, _, body = data.partition(b"\r\n\r\n")
        payload = dechunk(body) if b"chunked" in head.lower() else body
        ids = [] if payload is None else [
            line[4:].strip().decode() for line in payload.split(b"\n") if line.startswith(b"id: ")]
        events += len(ids)
        durations.append(done - sent)
        if status_of(head) == 200 and b"text/event-stream" in head.lower() and ids == expected:
            complete += 1
        else:
            key = f"status {status_of(head)}, {len(ids)} events"
            failures[key] = failures.get(key, 0) + 1
    print(json.dumps({
        "test": a.label, "n": a.n, "events_per_stream": a.events, "complete_streams": complete,
        "events": events, "expected_events": a.n * a.events, "failures": failures,
        "wall_s": round(wall, 3), "max_in_flight": state["max_in_flight"],
        "stream_s": {"min": pct(durations, 0), "p50": pct(durations, 50), "max": pct(durations, 100)},
        "threads": [base["threads"], during.get("threads"), after["threads"]],
        "threads_min_max_during": [sampler.min_threads, sampler.max_threads],
        "open_midway": during.get("in_flight"),
        "rss_base_kb": base["rss_kb"], "rss_peak_kb": sampler.peak_rss_kb,
    }))


def upload_cmd(a):
    server = Server(a.sid)
    base = server.snapshot()
    block = bytes(range(256)) * (MIB // 256)
    head = (f"POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {a.bytes}\r\nConnection: close\r\n\r\n").encode()
    with Sampler(server) as sampler:
        t0 = time.monotonic()
        error, data = None, b""
        try:
            with socket.create_connection((HOST, a.port), timeout=a.deadline) as sock:
                sock.sendall(head)
                left = a.bytes
                while left:
                    n = min(left, len(block))
                    sock.sendall(block[:n] if n < len(block) else block)
                    left -= n
                while chunk := sock.recv(READ_SIZE):
                    data += chunk
        except OSError as e:
            error = f"{type(e).__name__}: {e}"
        wall = time.monotonic() - t0
    after = server.snapshot()
    status = status_of(data)
    body = data.partition(b"\r\n\r\n")[2]
    try:
        counted = json.loads(body).get("bytes")
    except ValueError:
        counted = None
    print(json.dumps({
        "test": a.label, "bytes": a.bytes, "status": status, "handler_counted": counted,
        "error": error or (None if status == 200 and counted == a.bytes else body[:200].decode(errors="replace")),
        "wall_s": round(wall, 3), "mb_per_s": round(a.bytes / wall / 1e6, 1),
        "rss_base_kb": base["rss_kb"], "rss_peak_kb": sampler.peak_rss_kb, "hwm_kb": after["hwm_kb"],
        "peak_kb": max(sampler.peak_rss_kb, after["hwm_kb"]), "threads": [base["threads"], sampler.max_threads, after["threads"]],
    }))


def table_cmd(a):
    res = {}
    if os.path.exists(a.jsonl):
        for line in open(a.jsonl):
            if line.strip():
                d = json.loads(line)
                res[d.get("test") or d.get("name")] = d
    rows = []  # (measure, value, target, verdict)

    def verdict(cond):
        return "—" if cond is None else ("met" if cond else "NOT met")

    s = res.get("sleep")
    if s and "error" not in s:
        allok = s["ok"] == s["n"]
        rows.append((f"{s['n']:,} concurrent /sleep?ms={s['ms']} (--threads 2): answered 200",
                     f"{s['ok']:,}/{s['n']:,}" + (f" ({s['failures']})" if s["failures"] else ""), "all", verdict(allok)))
        rows.append(("… wall time, first connect → last answer", f"{s['wall_s']:.2f} s", "< 3 s", verdict(allok and s["wall_s"] < 3)))
        rows.append(("… in flight at once (sent, not yet answered)", f"{s['max_in_flight']:,}", f"{s['n']:,}", verdict(s["max_in_flight"] == s["n"])))
        rows.append(("… all requests sent after; SYNs dropped on a full accept queue",
                     f"{s.get('all_sent_s')} s; {s.get('listen_drops')}", "; 0", verdict(s.get("listen_drops") == 0)))
        rows.append(("… per-request latency p50 / p99 / max", "{} / {} / {} s".format(*s["latency_s"].values()), "", ""))
        rows.append(("… server RSS growth (peak − before)", f"{s['rss_growth_kb'] / 1024:.1f} MiB", "< 100 MiB", verdict(s["rss_growth_kb"] < 100 * 1024)))
        # Per request in flight: meaningful when all were (a loaded client opens them slower than
        # they are answered; SLEEP_MS=5000 keeps every one parked at once).
        rows.append(("… bytes per request in flight (growth / in flight)",
                     f"{s['rss_growth_kb'] * 1024 // max(1, s['max_in_flight']):,}", "", ""))
        rows.append(("… server threads before / max during / after", "{} / {} / {}".format(*s["threads"]), "fixed", verdict(len(set(s["threads"])) == 1)))
    elif s:
        rows.append(("10,000 concurrent /sleep", s["error"], "", "failed"))
    ref = res.get("sleep-axum-serve")
    if ref and "error" not in ref:
        rows.append((f"… the same {ref['n']:,} on axum-serve (reference): answered 200; wall; RSS growth; threads",
                     f"{ref['ok']:,}; {ref['wall_s']:.2f} s; {ref['rss_growth_kb'] / 1024:.1f} MiB; " + "{} / {} / {}".format(*ref["threads"]), "", ""))
    e = res.get("sse")
    if e and "error" not in e:
        rows.append((f"{e['n']:,} SSE streams × {e['events_per_stream']} events (100 ms apart): complete streams",
                     f"{e['complete_streams']:,}/{e['n']:,}" + (f" ({e['failures']})" if e["failures"] else ""), "all", verdict(e["complete_streams"] == e["n"])))
        rows.append(("… events delivered", f"{e['events']:,}/{e['expected_events']:,}", "all", verdict(e["events"] == e["expected_events"])))
        rows.append(("… stream duration min / p50 / max", "{} / {} / {} s".format(*e["stream_s"].values()), f"≈ {e['events_per_stream'] / 10:g} s", ""))
        th = e["threads"]
        fixed = None if th[1] is None else (len(set(th)) == 1 and e["threads_min_max_during"][0] == e["threads_min_max_during"][1] == th[0])
        rows.append(("… server threads before / midway / after (min–max sampled)",
                     "{} / {} / {} ({}–{})".format(*th, *e["threads_min_max_during"]), "fixed", verdict(fixed)))
        rows.append(("… streams open midway; server RSS before → peak",
                     f"{e['open_midway']}; {e['rss_base_kb'] / 1024:.1f} → {e['rss_peak_kb'] / 1024:.1f} MiB", "", ""))
    elif e:
        rows.append(("1,000 SSE streams", e["error"], "", "failed"))
    if a.tsv and os.path.exists(a.tsv):
        cells = {}
        for r in csv.DictReader(open(a.tsv), delimiter="\t"):
            try:
                cells.setdefault(r["group"], []).append((float(r["rps"]), float(r["p99_us"]) / 1000, float(r["errors"])))
            except (TypeError, ValueError):
                pass
        med = {g: (statistics.median(v[0] for v in vs), statistics.median(v[1] for v in vs), sum(v[2] for v in vs), len(vs))
               for g, vs in cells.items()}
        w, x = med.get("webserver"), med.get("axum-serve")
        if w and x:
            rows.append((f"axum hello, keep-alive -c50 ({w[3]} rounds): requests/s webserver / axum-serve",
                         f"{w[0]:,.0f} / {x[0]:,.0f} = {w[0] / x[0]:.2f}×", "≥ 0.9×", verdict(w[0] / x[0] >= 0.9)))
            rows.append(("… p99 latency webserver / axum-serve", f"{w[1]:.2f} / {x[1]:.2f} ms = {w[1] / x[1]:.2f}×",
                         "≤ 1.2×", verdict(w[1] / x[1] <= 1.2)))
            if w[2] or x[2]:
                rows.append(("… wrk errors webserver / axum-serve", f"{w[2]:.0f} / {x[2]:.0f}", "0", verdict(False)))
        else:
            rows.append(("axum hello vs axum-serve", "no result (see scenarios logs)", "", "failed"))
    u = res.get("upload")
    if u and "status" in u:
        okay = u["status"] == 200 and u["handler_counted"] == u["bytes"]
        rows.append((f"{u['bytes'] / MIB / 1024:g} GiB streamed POST /upload: status, bytes the handler counted",
                     f"{u['status']}, {u['handler_counted']}" + (f" ({u['error']})" if u["error"] else ""), f"200, {u['bytes']}", verdict(okay)))
        rows.append(("… peak server RSS (max of sampled sum, VmHWM sum)", f"{u['peak_kb'] / 1024:.1f} MiB (before: {u['rss_base_kb'] / 1024:.1f})",
                     "< 64 MiB", verdict(okay and u["peak_kb"] < 64 * 1024)))
        rows.append(("… upload throughput", f"{u['mb_per_s']:,.0f} MB/s ({u['wall_s']:.1f} s)", "", ""))
    elif u:
        rows.append(("1 GiB upload", u["error"], "", "failed"))
    print("| deferred requests (issue 10) | measured | target | |")
    print("|---|---:|---|---|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("sleep", "sse", "upload"):
        q = sub.add_parser(name)
        q.add_argument("--port", type=int, required=True)
        q.add_argument("--sid", type=int, required=True)
        q.add_argument("--deadline", type=float, default=60)
        q.add_argument("--connect-window", type=int, default=256)
        q.add_argument("--label", default=name, help="the name of the run in the JSON line (`test`)")
    sub.choices["sleep"].add_argument("--n", type=int, default=10000)
    sub.choices["sleep"].add_argument("--ms", type=int, default=1000)
    sub.choices["sleep"].add_argument("--path", default="/sleep?ms={ms}", help="another parking app's route")
    sub.choices["sleep"].add_argument("--expect", default="slept {ms} ms\n", help="the body's end")
    sub.choices["sse"].add_argument("--n", type=int, default=1000)
    sub.choices["sse"].add_argument("--events", type=int, default=100)
    sub.choices["upload"].add_argument("--bytes", type=int, default=1 << 30)
    t = sub.add_parser("table")
    t.add_argument("jsonl")
    t.add_argument("tsv", nargs="?")
    a = p.parse_args()
    {"sleep": sleep_cmd, "sse": sse_cmd, "upload": upload_cmd, "table": table_cmd}[a.cmd](a)


if __name__ == "__main__":
    main()
