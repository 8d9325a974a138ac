#!/usr/bin/env python3
"""ws_idle.py — issue 19's idle WebSocket numbers against a server already listening.

Usage: ws_idle.py --port P --sid SID [--n 10000] [--probes 200]

Opens N WebSockets (the C echo: tests/fixtures/ws_echo.c), has one message echoed on each, waits
one second, reads the server session's RSS and threads (the method of idle10k.py: summed over the
processes of the server's session), then times PROBES new handshakes, each with one echo, while
the N stay open. Prints one JSON object: the RSS growth per connection, threads before/after,
and the new handshakes' p50/p99/max in ms.
"""
import argparse, json, os, socket, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idle10k import memory, pct, threads  # noqa: E402

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def frame(payload):
    key = b"\x01\x02\x03\x04"
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + key + masked


HELLO = frame(b"hello")
ECHO = b"\x81\x05hello"


def open_one(port):
    """A WebSocket with one message echoed (handshake and message in one write)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(HANDSHAKE + HELLO)
    return s


def finish(s):
    data = b""
    while not data.endswith(ECHO):
        chunk = s.recv(4096)
        if not chunk:
            raise OSError("closed before the echo")
        data += chunk
    if not data.startswith(b"HTTP/1.1 101 "):
        raise OSError("no 101: %r" % data[:40])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sid", type=int, required=True)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--probes", type=int, default=200)
    a = ap.parse_args()
    base, thr_base = memory(a.sid), threads(a.sid)
    socks, failed = [], 0
    for _ in range(a.n):
        try:
            socks.append(open_one(a.port))
        except OSError:
            failed += 1
    for s in socks:
        try:
            finish(s)
        except OSError:
            failed += 1
    time.sleep(1)
    loaded, thr_loaded = memory(a.sid), threads(a.sid)
    probe_ms = []
    for _ in range(a.probes):
        t0 = time.perf_counter()
        s = open_one(a.port)
        finish(s)
        probe_ms.append((time.perf_counter() - t0) * 1000)
        s.close()
    delta = loaded["rss_kb"] - base["rss_kb"]
    print(json.dumps({
        "requested": a.n, "failed": failed,
        "delta_rss_kb": delta, "bytes_per_ws": round(delta * 1024 / max(1, a.n - failed)),
        "threads_base": thr_base, "threads_loaded": thr_loaded,
        "probe_ms": {"p50": round(pct(probe_ms, 50), 2), "p99": round(pct(probe_ms, 99), 2),
                     "max": round(max(probe_ms), 2)},
    }))
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
