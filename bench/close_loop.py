#!/usr/bin/env python3
"""close_loop.py PORT N [PATH] [BATCH] — N requests with `Connection: close`, each on a new
connection.

The `Connection: close` counterpart of keepalive_loop.py, for instruction counts
(bench/callgrind.sh with MODE=close): connections are opened BATCH at a time (default 1, one
in flight), each sends one request and reads its response to EOF, so the server does the same
work per request however fast or busy the machine is. BATCH > 1 opens that many connections
before reading any answer, as wrk's 50 connections do, so one listener event finds several
queued. Exits non-zero on any non-200 or a connection closed before its response.
"""
import socket
import sys


def main() -> int:
    port, n = int(sys.argv[1]), int(sys.argv[2])
    path = sys.argv[3] if len(sys.argv) > 3 else "/"
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: close_loop\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode()
    done = 0
    while done < n:
        socks = []
        for _ in range(min(batch, n - done)):
            # A server that stops answering fails the run instead of hanging it.
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            sock.sendall(request)
            socks.append(sock)
        for sock in socks:
            response = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                response += chunk
            sock.close()
            if not response.startswith(b"HTTP/1.1 200"):
                print(f"response {done}: {response[:40]!r}", file=sys.stderr)
                return 1
            done += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
