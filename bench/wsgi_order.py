#!/usr/bin/env python3
"""How fairly a server takes turns between kept-alive connections, in a unit that CPU contention
from other processes does not change: for every request, how many responses to OTHER connections
arrived while it was outstanding ("overtaken by").

A closed loop of CONNS connections (one request outstanding on each, the next sent when its
response is complete, like wrk) against http://127.0.0.1:PORT PATH for SECONDS. A server serving
the connections in turn answers each request after about CONNS - 1 others, whatever its speed; a
p99 far above CONNS means some requests wait while others are served many times — and wrk's p99
latency is that count times the time per request. Connections the server closes after a response
(uWSGI's --http-socket) are reopened and the next request is sent on the new one.

Usage: wsgi_order.py PORT PATH [CONNS=50] [SECONDS=3]
Prints one line: responses, responses/s, overtaken-by p50 / p90 / p99 / max, and the longest time
without any response (a server that stalls as a whole overtakes nobody; this shows it — but so does
a server that other processes keep off the CPU).
Only 127.0.0.1 is contacted; the run is bounded in time.
"""
import selectors, socket, sys, time

port, path = int(sys.argv[1]), sys.argv[2]
conns = int(sys.argv[3]) if len(sys.argv) > 3 else 50
seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
REQUEST = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()

sel = selectors.DefaultSelector()
done = 0          # responses completed so far, all connections
overtaken = []    # per response: responses to other connections completed while it waited
last_at = None    # when the last response completed
pauses = []       # gaps between consecutive responses, seconds


class Client:
    def __init__(self):
        self.sock = None
        self.open()

    def open(self):
        if self.sock is not None:
            sel.unregister(self.sock)
            self.sock.close()
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sel.register(self.sock, selectors.EVENT_READ, self)
        self.buf = b""
        self.send()

    def send(self):
        self.sent_at = done
        self.sock.sendall(REQUEST)

    def readable(self):
        global done
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.open()   # closed between responses: reopen, resend the request
            return
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].lower()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip() == b"content-length":
                length = int(value)
        if len(self.buf) < end + 4 + length:
            return
        global last_at
        now = time.monotonic()
        if last_at is not None:
            pauses.append(now - last_at)
        last_at = now
        overtaken.append(done - self.sent_at)
        done += 1
        if b"connection: close" in head:
            self.open()
        else:
            self.buf = self.buf[end + 4 + length:]
            self.send()


clients = [Client() for _ in range(conns)]
start = time.monotonic()
while time.monotonic() - start < seconds:
    for key, _ in sel.select(timeout=1.0):
        key.data.readable()
elapsed = time.monotonic() - start
for c in clients:
    c.sock.close()
if not overtaken:
    sys.exit("no response")
o = sorted(overtaken)
q = lambda p: o[min(len(o) - 1, int(p * len(o)))]
print(f"responses {len(o)}  {len(o) / elapsed:.0f}/s  overtaken-by p50 {q(0.5)}  p90 {q(0.9)}  "
      f"p99 {q(0.99)}  max {o[-1]}  (connections {conns}; fair turns: about {conns - 1}); "
      f"longest pause between responses {max(pauses, default=0) * 1000:.0f} ms")
