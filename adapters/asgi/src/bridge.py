"""The asyncio side of libasgi.so: the worker's event loop, the app's receive/send, lifespan.

The Rust side (src/exchange.rs) owns each request's state; `chan` is its Python handle. Serving
threads never run a coroutine: they schedule work here with loop.call_soon_threadsafe and the loop
thread runs it, so a request waiting on the app holds no serving thread.
"""

import asyncio
import gc
import inspect
import re
import sys
import sysconfig
import threading
import traceback


def new_loop(kind):
    """The worker's loop: uvloop for 'uvloop' (required) and 'auto' (if installed), else asyncio."""
    if kind in ("uvloop", "auto"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop(), "uvloop " + uvloop.__version__
    return asyncio.new_event_loop(), "asyncio"


# The loop thread's id, for where_blocked.
loop_thread = None


def run_loop(loop):
    global loop_thread
    loop_thread = threading.get_ident()
    asyncio.set_event_loop(loop)
    loop.run_forever()


def start_clock(loop, clock, interval):
    """From init: the loop says it runs every `interval` seconds (the Rust watchdog reads it)."""

    def tick():
        clock.beat()
        loop.call_later(interval, tick)

    loop.call_soon_threadsafe(tick)


# The standard library, this bridge (compiled from a string) and frozen modules.
_LIBRARY = tuple(
    {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"], "<", "webserver_asgi.py"}
)


def _is_library(filename):
    return filename.startswith(_LIBRARY) or "site-packages" in filename


def _describe(frames):
    """Where code waits or runs, as 'file:line in function': the innermost of `frames` (oldest
    first) that is the app's own (not the standard library's or an installed package's)."""
    if not frames:
        return "(no Python frame)"
    pick = next((f for f in reversed(frames) if not _is_library(f.f_code.co_filename)), frames[-1])
    return "%s:%d in %s" % (pick.f_code.co_filename, pick.f_lineno, pick.f_code.co_name)


def _frame_of(awaitable):
    for name in ("cr_frame", "gi_frame", "ag_frame"):
        frame = getattr(awaitable, name, None)
        if frame is not None:
            return frame
    return None


def _awaited_frames(coro):
    """The frames of a suspended coroutine and of what it awaits, down the chain."""
    frames = []
    while coro is not None:
        frame = _frame_of(coro)
        if frame is None:
            # What `anext(agen)` returns (contextlib's @asynccontextmanager awaits one) has no
            # frame of its own and does not name its generator; the collector's view does.
            coro = next((r for r in gc.get_referents(coro) if _frame_of(r) is not None), None)
            frame = _frame_of(coro)
            if frame is None:
                break
        frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
    return frames


def where_blocked():
    """From the watchdog: where the loop thread runs now."""
    frame = sys._current_frames().get(loop_thread)
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    return _describe(frames)


class ClientDisconnected(OSError):
    """send() on a WebSocket that is closed (the spec's server-specific OSError subclass)."""


class WsgiApp(TypeError):
    """The target is a WSGI callable (environ, start_response), not an ASGI app."""


def as_asgi3(app):
    """(ASGI 3 callable, "3.0" or "2.0"), by the check uvicorn makes; WsgiApp for a WSGI callable.

    A plain (not async) callable is told apart by its required positional parameters: two are
    WSGI's (environ, start_response), three ASGI 3's, one ASGI 2's (scope).
    """
    if inspect.isclass(app):
        if hasattr(app, "__await__"):
            return app, "3.0"
        return _asgi2(app), "2.0"
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else getattr(app, "__call__", None)
    if asyncio.iscoroutinefunction(call):
        return app, "3.0"
    try:
        params = inspect.signature(app).parameters.values()
    except (TypeError, ValueError):
        return _asgi2(app), "2.0"
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(positional) == 2:
        raise WsgiApp()
    if len(positional) == 3:
        # (scope, receive, send) returning an awaitable: an ASGI 3 app behind a plain wrapper.
        return app, "3.0"
    return _asgi2(app), "2.0"


def _asgi2(app):
    async def asgi3(scope, receive, send):
        instance = app(scope)
        await instance(receive, send)

    return asgi3


def _wake(fut):
    if not fut.done():
        fut.set_result(None)


def wake(loop, fut):
    """From a serving thread: resume the coroutine awaiting `fut`."""
    loop.call_soon_threadsafe(_wake, fut)


def _cancel(chan):
    task = chan.task
    if task is not None:
        task.cancel()


def cancel(loop, chan):
    """From a serving thread: the request ended before its response did (client gone, --timeout)."""
    loop.call_soon_threadsafe(_cancel, chan)


def start(loop, app, scope, chan):
    """From a serving thread: run one request on the loop."""
    loop.call_soon_threadsafe(_start, loop, app, scope, chan)


def _start(loop, app, scope, chan):
    chan.task = loop.create_task(_serve(loop, app, scope, chan))


async def _serve(loop, app, scope, chan):
    async def receive():
        while True:
            fut = loop.create_future()
            event = chan.receive(fut)
            if event is not None:
                return event
            await fut

    async def send(message):
        # chan.send: 0 done; 1 wait, then done; 2 wait, then send again; 3 the connection is
        # closed (see exchange.rs).
        while True:
            outcome = chan.send(message)
            if outcome == 0:
                return
            if outcome == 3:
                raise ClientDisconnected("the client closed the connection")
            fut = loop.create_future()
            if chan.wait_send(fut):
                await fut
            if outcome == 1:
                return

    try:
        await app(scope, receive, send)
    except asyncio.CancelledError:
        chan.finish(None)
    except BaseException as e:  # noqa: B902 - the server reports every failure of the app
        chan.finish("".join(traceback.format_exception(e)).rstrip())
    else:
        chan.finish(None)
    finally:
        # The task refers to the coroutine, which refers to chan: break the cycle.
        chan.task = None


_FRAME = re.compile(r'^\s*File "(.+)", line (\d+)', re.M)


def summary(text):
    """One line for a traceback or a failure message: its last line, and where (file:line)."""
    lines = [l.strip() for l in (text or "").splitlines() if l.strip()]
    last = lines[-1] if lines else "(no message)"
    frames = _FRAME.findall(text or "")
    return last + (" (at %s:%s)" % frames[-1] if frames else "")


class Lifespan:
    """The ASGI lifespan protocol: startup before the worker is ready, shutdown when it stops.

    Each outcome is (what, message): "ok", "failed" (the app said so, or raised after startup),
    "unsupported" (the app raised or returned before startup: it has no lifespan, as uvicorn's
    'auto' mode treats it).
    """

    def __init__(self, app, version, state):
        self.app = app
        self.version = version
        self.state = state

    async def startup(self):
        loop = asyncio.get_running_loop()
        self.inbox = asyncio.Queue()
        self.started = loop.create_future()
        self.stopped = loop.create_future()
        self.task = loop.create_task(self._main())
        return await self.started

    async def shutdown(self):
        if self.task.done():
            return ("ok", None)
        self.inbox.put_nowait({"type": "lifespan.shutdown"})
        return await self.stopped

    async def _main(self):
        scope = {
            "type": "lifespan",
            "asgi": {"version": self.version, "spec_version": "2.0"},
            "state": self.state,
        }
        self.inbox.put_nowait({"type": "lifespan.startup"})
        try:
            await self.app(scope, self.inbox.get, self._send)
        except BaseException as e:  # noqa: B902
            text = "".join(traceback.format_exception(e)).rstrip()
            if not self.started.done():
                self.started.set_result(("unsupported", text))
            elif not self.stopped.done():
                self.stopped.set_result(("failed", text))
        finally:
            if not self.started.done():
                self.started.set_result(("unsupported", None))
            if not self.stopped.done():
                self.stopped.set_result(("ok", None))

    async def _send(self, message):
        kind = message["type"]
        outcome = "ok" if kind.endswith(".complete") else "failed"
        fut = self.started if kind.startswith("lifespan.startup.") else self.stopped
        if not fut.done():
            fut.set_result((outcome, message.get("message", "")))


def lifespan_startup(loop, app, version, state):
    """From init: (Lifespan, a concurrent future of startup's outcome)."""
    lifespan = Lifespan(app, version, state)
    return lifespan, asyncio.run_coroutine_threadsafe(lifespan.startup(), loop)


def lifespan_stuck(loop, lifespan):
    """From init, when the startup took too long: where it waits (one line); then cancel it."""
    task = getattr(lifespan, "task", None)
    if task is None or asyncio.current_task(loop) is task:
        # Not started, or it blocks the loop (a call that does not await): the loop thread's
        # own stack says where.
        where = where_blocked()
    else:
        where = _describe(_awaited_frames(task.get_coro()))
    if task is not None:
        loop.call_soon_threadsafe(task.cancel)
    return where


def lifespan_shutdown(loop, lifespan, timeout):
    """From shutdown: shutdown's outcome, or ("failed", ...) after `timeout` seconds."""
    fut = asyncio.run_coroutine_threadsafe(lifespan.shutdown(), loop)
    try:
        return fut.result(timeout)
    except TimeoutError:
        fut.cancel()
        return ("failed", "lifespan shutdown did not finish within %s s" % timeout)
