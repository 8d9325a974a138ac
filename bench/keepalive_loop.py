#!/usr/bin/env python3
"""keepalive_loop.py PORT N [PATH] — N sequential requests on one kept-alive connection.

A deterministic client for instruction counts (bench/callgrind.sh): one request in flight, each
response read whole (Content-Length) before the next is sent, so the server does the same work
per request however fast or busy the machine is. Exits non-zero on any non-200 or short read.
"""
import socket
import sys


def main() -> int:
    port, n = int(sys.argv[1]), int(sys.argv[2])
    path = sys.argv[3] if len(sys.argv) > 3 else "/"
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: keepalive_loop\r\nAccept: */*\r\n\r\n".encode()
    # A server that stops answering fails the run instead of hanging it.
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    for i in range(n):
        sock.sendall(request)
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                print(f"closed after {i} responses", file=sys.stderr)
                return 1
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            print(f"response {i}: {head[:40]!r}", file=sys.stderr)
            return 1
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(buf) < length:
            chunk = sock.recv(65536)
            if not chunk:
                print(f"closed inside response {i}", file=sys.stderr)
                return 1
            buf += chunk
        buf = buf[length:]
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
