"""Bare ASGI apps for bench/asgi.sh: `hello:app` answers every request "Hello, world!",
`hello:sleep` answers GET /sleep after `await asyncio.sleep(1)` (10,000 at once on one worker;
any other path at once, for the bench's readiness probe), and `hello:echo` echoes every
WebSocket message (and answers plain HTTP requests "ok", for the probe)."""

import asyncio

HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b"Hello, world!"})


async def sleep(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/sleep":
        await asyncio.sleep(1)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"slept"})


async def echo(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] != "websocket.receive":
            return
        await send({"type": "websocket.send", "bytes": event.get("bytes"), "text": event.get("text")})
