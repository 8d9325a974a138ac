#!/usr/bin/env python3
"""Hold N idle keep-alive connections against one server and measure what they cost.

  * the memory of the server's session (RSS and PSS summed over its processes) before the
    connections and 1 s after the last one opened, and which of them are still open then;
  * latency of a NEW request on a NEW connection while the N are held (--probes sequential
    connect + GET + full response + close; p50/p99/max in ms), and of a request on a few of the
    held connections themselves (--reuse-probes; proves they were really kept alive);
  * the server's thread count (sum of Threads: over its session's processes) before the
    connections, with them open, and after the probes.

Steps: base memory/threads -> open N connections, one request each (--open burst, the default:
all N connect at once and each sends its request as soon as it is connected, the responses read
as they come, one epoll loop; --open serial: one after another; both bounded by --deadline)
-> sleep 1 s -> memory/threads/open count -> probes -> threads -> hold until --hold s
after opening -> open count -> close all -> memory 2 s later.  Only 127.0.0.1 is contacted; every socket op has a
timeout.  Prints one JSON line.  With --tls CAFILE every connection (held ones and probes) speaks
TLS to a server whose certificate CAFILE verifies for 127.0.0.1; in a burst the handshakes run
in the same epoll loop.

Usage: idle10k.py --port P --sid SID [--n 10000] [--hold 3] [--probes 200] [--reuse-probes 50]
                  [--deadline 90] [--open burst|serial] [--tls CAFILE]
"""
import argparse, errno, json, os, random, resource, select, socket, ssl, statistics, time

# What every connection sends: one small keep-alive request.
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
RECV_SIZE = 4096
# The client TLS context (--tls), or None for plain TCP.
TLS = None


def wrap(sock, handshake=True):
    """`sock` as this run speaks on it: as is, or TLS (the handshake now, or driven by the caller)."""
    if TLS is None:
        return sock
    return TLS.wrap_socket(sock, server_hostname="127.0.0.1", do_handshake_on_connect=handshake)


def connect(port, timeout):
    return wrap(socket.create_connection(("127.0.0.1", port), timeout=timeout))


def session_pids(sid):
    """Every live process whose session id (field 6 of /proc/PID/stat) is `sid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                # The command name may hold spaces and parentheses: split after the last ')'.
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[3]) == sid:
            found.append(int(entry))
    return found


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def memory(sid):
    """RSS (VmRSS) and PSS (smaps_rollup) in KiB, summed over the session's processes."""
    pids = session_pids(sid)
    rss = pss = 0
    for pid in pids:
        try:
            rss += status_kb(pid, "VmRSS")
            with open(f"/proc/{pid}/smaps_rollup") as f:
                pss += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except OSError:
            pass
    return {"rss_kb": rss, "pss_kb": pss, "nprocs": len(pids)}


def read_response(sock):
    """Reads one response framed by Content-Length (absent: empty body); True if it was a 200."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(RECV_SIZE)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(RECV_SIZE)
        if not chunk:
            return False
        body += chunk
    return head.split(b" ", 2)[1:2] == [b"200"]


def open_serial(port, n, deadline, sock_timeout):
    """N connections one after another, each answered before the next opens."""
    t0 = time.monotonic()
    socks, fail_connect, fail_req = [], 0, 0
    for _ in range(n):
        if time.monotonic() - t0 > deadline:
            break
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(sock_timeout)
        try:
            s.connect(("127.0.0.1", port))
            s = wrap(s)
        except OSError:
            fail_connect += 1
            s.close()
            continue
        try:
            s.sendall(REQUEST)
            ok = read_response(s)
        except OSError:
            ok = False
        if not ok:
            fail_req += 1
        socks.append(s)
    return socks, fail_connect, fail_req


def response_done(data):
    """None while `data` is not a whole response (Content-Length framed), else whether it is a 200."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if len(body) < length:
        return None
    return head.split(b" ", 2)[1:2] == [b"200"]


def open_burst(port, n, deadline, sock_timeout):
    """N connections started at once (non-blocking connects); each sends its request when it is
    connected; responses are read as they arrive. The server sees all N arrive together."""
    t0 = time.monotonic()
    ep = select.epoll()
    pending = {}  # fd -> [socket, bytes received, request sent, TLS handshake done]
    fail_connect = 0
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            fail_connect += 1
            s.close()
            continue
        pending[s.fileno()] = [s, b"", False, TLS is None]
        ep.register(s.fileno(), select.EPOLLOUT)
    done, fail_req = [], 0
    while pending and time.monotonic() - t0 < deadline:
        for fd, ev in ep.poll(0.5):
            entry = pending[fd]
            s = entry[0]
            if not entry[2]:
                if not entry[3]:
                    if not isinstance(s, ssl.SSLSocket):
                        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                            fail_connect += 1
                            ep.unregister(fd)
                            del pending[fd]
                            s.close()
                            continue
                        s = entry[0] = wrap(s, handshake=False)
                    try:
                        s.do_handshake()
                        entry[3] = True
                    except ssl.SSLWantReadError:
                        ep.modify(fd, select.EPOLLIN)
                        continue
                    except ssl.SSLWantWriteError:
                        ep.modify(fd, select.EPOLLOUT)
                        continue
                    except OSError:
                        fail_connect += 1
                        ep.unregister(fd)
                        del pending[fd]
                        s.close()
                        continue
                elif s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    fail_connect += 1
                    ep.unregister(fd)
                    del pending[fd]
                    s.close()
                    continue
                try:
                    s.send(REQUEST)  # 58 bytes into an empty send buffer
                except OSError:  # the server closed it (a handshake past its header timeout)
                    fail_connect += 1
                    ep.unregister(fd)
                    del pending[fd]
                    s.close()
                    continue
                entry[2] = True
                ep.modify(fd, select.EPOLLIN)
                continue
            try:
                chunk = s.recv(RECV_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
            except OSError:
                chunk = b""
            entry[1] += chunk
            ok = response_done(entry[1]) if chunk else False
            if ok is None:
                continue
            ep.unregister(fd)
            del pending[fd]
            if not ok:
                fail_req += 1
            s.settimeout(sock_timeout)
            done.append(s)
    for s, *_ in pending.values():  # past the deadline: count them as failed, keep them
        fail_req += 1
        s.settimeout(sock_timeout)
        done.append(s)
    ep.close()
    return done, fail_connect, fail_req


def closed_by_server(sock):
    """Whether a readable `sock` holds the server's end (the server sends nothing unasked)."""
    if not isinstance(sock, ssl.SSLSocket):
        return not sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return not sock.recv(1)  # close_notify
    except ssl.SSLWantReadError:
        return False  # TLS records that were not data (a session ticket)
    finally:
        sock.settimeout(timeout)


def count_open(socks):
    """How many of `socks` the server has not closed: nothing readable, or data that is not EOF."""
    still_open = 0
    for sock in socks:
        try:
            poller = select.poll()  # select() cannot watch descriptors above 1023
            poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
            if poller.poll(0) and closed_by_server(sock):
                continue  # orderly close by the server
            still_open += 1
        except OSError:
            continue  # reset by the server
    return still_open


def threads(sid):
    n = 0
    for p in session_pids(sid):
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
    ap.add_argument("--open", choices=("burst", "serial"), default="burst")
    ap.add_argument("--tls", metavar="CAFILE")
    a = ap.parse_args()
    global TLS
    if a.tls:
        TLS = ssl.create_default_context(cafile=a.tls)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(a.n + 200, hard), hard))

    base = memory(a.sid)
    thr_base = threads(a.sid)
    t0 = time.monotonic()
    opener = open_burst if a.open == "burst" else open_serial
    socks, fail_connect, fail_req = opener(a.port, a.n, a.deadline, a.sock_timeout)
    t_open = time.monotonic() - t0
    time.sleep(1.0)
    loaded = memory(a.sid)
    thr_loaded = threads(a.sid)
    open_1s = count_open(socks)

    # New request on a new connection, while the N are held.
    lat, probe_fail = [], 0
    for _ in range(a.probes):
        t = time.perf_counter()
        try:
            with connect(a.port, a.sock_timeout) as s:
                s.sendall(REQUEST)
                ok = read_response(s)
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
            s.sendall(REQUEST)
            ok = read_response(s)
        except OSError:
            ok = False
        if ok:
            reuse_lat.append((time.perf_counter() - t) * 1000)
        else:
            reuse_fail += 1
    thr_after = threads(a.sid)
    time.sleep(max(0.0, t0 + t_open + a.hold - time.monotonic()))
    held = memory(a.sid)
    open_end = count_open(socks)
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
    # Whether the memory the burst took comes back once its connections are gone.
    time.sleep(2.0)
    closed = memory(a.sid)
    r3 = lambda x: None if x is None else round(x, 3)
    out = {
        "open": a.open, "tls": bool(a.tls), "requested": a.n, "connected": len(socks), "req_ok": len(socks) - fail_req,
        "fail_connect": fail_connect, "fail_req": fail_req,
        "open_after_1s": open_1s, "open_after_hold": open_end,
        "open_secs": round(t_open, 2), "hold_s": a.hold,
        "base": base, "loaded": loaded, "held": held, "closed": closed,
        "delta_rss_closed_kb": closed["rss_kb"] - base["rss_kb"],
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
