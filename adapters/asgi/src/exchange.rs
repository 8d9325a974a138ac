//! One request between the server and the app's coroutine: the state both sides share
//! ([`Shared`]), its Python handle that `receive` and `send` call on the loop thread ([`Channel`]),
//! and the deferred body the server pulls on its serving threads ([`Body`]).
//!
//! Locking: the loop thread holds the GIL and then takes a request's lock; a serving thread never
//! takes the GIL while holding it (what it must hand to Python, a future to resume, it takes out
//! of the state first).
//!
//! Flow control, both ways:
//! - Request body: bytes are read only when the app awaits `receive()` (one `try_read` of up to
//!   [`READ_CHUNK`] bytes per call, on the serving thread the server calls `next` on), so a slow
//!   app slows the uploader and a fast uploader never grows memory; while no byte is buffered the
//!   request is parked without a thread until the server sees more arrive.
//! - Response body: `send()` queues the chunk and returns; past [`SEND_HIGH_WATER`] bytes queued it
//!   waits until the server took them (the server sends each chunk before asking for the next, and
//!   parks the request while the client is not reading), so a slow client slows the app.

// PyO3 0.22's #[pymethods] expansion converts PyResult's error into itself.
#![allow(clippy::useless_conversion)]

mod body;
mod file;
mod trailers;
mod ws;

pub(crate) use body::Body;

use crate::websocket::{self, Received, Sent, WsShared};
use app_abi::raw::{WsHost, WS_ERR_INVALID, WS_FILE_RANGES, WS_MSG_BINARY, WS_MSG_TEXT};
use app_abi::{BodyIo, FileSend, Logger, Next, Waker};
use file::ResponseFile;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString};
use std::collections::VecDeque;
use std::ffi::c_void;
use std::sync::{Arc, Mutex, MutexGuard};

/// Response bytes queued before `send()` waits for the server to take them.
const SEND_HIGH_WATER: usize = 64 * 1024;
/// The most request-body bytes one `receive()` returns.
const READ_CHUNK: usize = 64 * 1024;

/// Response header fields, as the app sent them.
type Headers = Vec<(Vec<u8>, Vec<u8>)>;

/// `http.response.start`, until the server's `next` hands it to the host.
struct Head {
    status: u16,
    headers: Headers,
}

#[derive(Default)]
struct State {
    // The response, as the app sends it.
    head: Option<Head>,
    /// `http.response.start` was sent.
    started: bool,
    chunks: VecDeque<Vec<u8>>,
    /// Bytes in `chunks`.
    queued: usize,
    /// The response is complete: its body ended and, when `http.response.start` asked for
    /// trailers, the last `http.response.trailers` was sent.
    complete: bool,
    /// `http.response.start` had `trailers: True` (the `http.response.trailers` extension).
    wants_trailers: bool,
    /// The body ended (`more_body` false, or a file that ends it).
    body_ended: bool,
    /// The `http.response.trailers` fields so far, handed to the server with the body's end.
    trailers: Headers,
    /// `http.response.pathsend`'s or a last `http.response.zerocopysend`'s file, for the server
    /// to send (ABI 1.2 `send_file`; read in chunks where the server cannot).
    file: Option<ResponseFile>,
    /// The app's coroutine ended (returned, raised or was cancelled).
    finished: bool,
    /// The app failed: `next` answers an error (500 if nothing was sent, else the connection is
    /// cut).
    failed: bool,
    /// The server closed the body: the response is over (sent, client gone or `--timeout`).
    closed: bool,
    // The request body, as the server reads it.
    body_in: VecDeque<Vec<u8>>,
    /// The host said the body is complete.
    body_end: bool,
    /// `receive()` returned the last `http.request` (`more_body` false).
    end_told: bool,
    /// The request body failed (client gone, malformed, too large): the server answers the
    /// client; `receive()` says `http.disconnect`.
    body_failed: bool,
    /// A `receive()` waits for body bytes: the next `next` reads.
    body_wanted: bool,
    /// The future a waiting `receive()` awaits.
    receive_waiter: Option<PyObject>,
    /// The future a `send()` past the high-water mark (or a `websocket.accept`) awaits.
    send_waiter: Option<PyObject>,
    // A WebSocket request before its accept.
    /// `receive()` said `websocket.connect`.
    connect_told: bool,
    /// `websocket.accept` (subprotocol, headers), until `next` hands it to the server.
    accept: Option<(Vec<u8>, Headers)>,
    /// `next` took the accept and the server has not answered it yet: the app's `send(accept)`
    /// must wait for the answer, or a `websocket.send` right after it finds no handle.
    accepting: bool,
}

/// What `Channel::send` tells `bridge.py`.
const SEND_DONE: u8 = 0;
/// Wait (`wait_send`), then go on: the queued bytes were taken or the accept is done.
const SEND_WAIT: u8 = 1;
/// Wait (`wait_send`), then send the same message again: the WebSocket had no room.
const SEND_RETRY: u8 = 2;
/// The connection is closed: `bridge.py` raises `ClientDisconnected`.
const SEND_GONE: u8 = 3;

/// The request's host calls, for `websocket_accept` from `next`.
#[derive(Clone, Copy)]
pub(crate) struct RawIo {
    pub(crate) host: &'static WsHost,
    pub(crate) io: *mut c_void,
}

// SAFETY: `io` is used only from the body's `next`, on whichever serving thread runs it; the ABI
// keeps it valid at the same address until `close` (the body's drop).
unsafe impl Send for RawIo {}

/// What the server and the app's coroutine share for one request.
pub(crate) struct Shared {
    state: Mutex<State>,
    waker: Waker,
    logger: Logger,
    label: Arc<str>,
    /// A WebSocket request's connection (empty until its accept).
    ws: Option<Arc<WsShared>>,
    /// The asyncio task running the app (set and used on the loop thread), for a cancel when
    /// the request ends first.
    task: Mutex<Option<PyObject>>,
}

impl Shared {
    /// `body_empty`: the request has no body (no Content-Length, or 0, and not chunked), so the
    /// first `receive()` answers at once.
    pub(crate) fn new(
        waker: Waker,
        logger: Logger,
        label: Arc<str>,
        body_empty: bool,
        ws: Option<Arc<WsShared>>,
    ) -> Shared {
        Shared {
            state: Mutex::new(State {
                body_end: body_empty,
                ..State::default()
            }),
            waker,
            logger,
            label,
            ws,
            task: Mutex::new(None),
        }
    }

    pub(crate) fn is_websocket(&self) -> bool {
        self.ws.is_some()
    }

    pub(crate) fn take_task(&self) -> Option<PyObject> {
        self.task.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The loop could not start the app for this request (its scope or task): a 500.
    pub(crate) fn fail_to_start(&self, why: &str) {
        {
            let mut st = self.state();
            st.failed = true;
            st.finished = true;
        }
        self.logger.error(&format!(
            "ASGI bridge: cannot start {} for this request: {why}",
            self.label
        ));
        self.waker.wake();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent: a panic elsewhere cannot have torn it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The Python side's handle on a request (`chan` in `bridge.py`).
#[pyclass]
pub(crate) struct Channel {
    shared: Arc<Shared>,
}

impl Channel {
    pub(crate) fn new(shared: Arc<Shared>) -> Channel {
        Channel { shared }
    }
}

/// What `receive()` returns now.
enum Event {
    Body(Vec<u8>, bool),
    Disconnect,
}

#[pymethods]
impl Channel {
    /// The asyncio task running the app (`bridge.py` sets it, and clears it when it ends).
    #[setter]
    fn set_task(&self, task: Option<PyObject>) {
        *self.shared.task.lock().unwrap_or_else(|e| e.into_inner()) = task;
    }

    /// The next `receive()` event, or `None` after registering `fut` to be resumed when there is
    /// one.
    fn receive(&self, py: Python<'_>, fut: PyObject) -> PyResult<Option<PyObject>> {
        if let Some(ws) = &self.shared.ws {
            return self.ws_receive(py, ws, fut);
        }
        let event = {
            let mut st = self.shared.state();
            if let Some(chunk) = st.body_in.pop_front() {
                let more = !(st.body_end && st.body_in.is_empty());
                st.end_told = !more;
                Some(Event::Body(chunk, more))
            } else if st.body_end && !st.end_told {
                st.end_told = true;
                Some(Event::Body(Vec::new(), false))
            } else if st.closed || st.body_failed {
                Some(Event::Disconnect)
            } else {
                st.receive_waiter = Some(fut);
                if !st.body_end {
                    st.body_wanted = true;
                    drop(st);
                    self.shared.waker.wake();
                }
                None
            }
        };
        let Some(event) = event else { return Ok(None) };
        let dict = PyDict::new_bound(py);
        match event {
            Event::Body(bytes, more) => {
                dict.set_item(intern!(py, "type"), intern!(py, "http.request"))?;
                dict.set_item(intern!(py, "body"), PyBytes::new_bound(py, &bytes))?;
                dict.set_item(intern!(py, "more_body"), more)?;
            }
            Event::Disconnect => {
                dict.set_item(intern!(py, "type"), intern!(py, "http.disconnect"))?
            }
        }
        Ok(Some(dict.into_any().unbind()))
    }

    /// One `send(message)`: `SEND_DONE`, `SEND_WAIT`, `SEND_RETRY` or `SEND_GONE`.
    fn send(&self, message: &Bound<'_, PyAny>) -> PyResult<u8> {
        let py = message.py();
        let kind = field(message, intern!(py, "type"))?
            .ok_or_else(|| PyValueError::new_err("an ASGI message needs a 'type'"))?;
        let kind = kind.downcast::<PyString>()?.to_str()?;
        let kind = match (&self.shared.ws, kind) {
            (Some(ws), k) if k.starts_with("websocket.") && !k.starts_with("websocket.http.") => {
                return self.ws_send(ws, k, message)
            }
            // The denial response (the `websocket.http.response` extension) is an HTTP one.
            (Some(_), "websocket.http.response.start") => "http.response.start",
            (Some(_), "websocket.http.response.body") => "http.response.body",
            (_, k) => k,
        };
        match kind {
            "http.response.start" => {
                let status: Option<u16> =
                    field(message, intern!(py, "status"))?.and_then(|s| s.extract().ok());
                let status = status.ok_or_else(|| {
                    PyValueError::new_err("http.response.start: status must be an int 100-599")
                })?;
                let headers = field_or(message, intern!(py, "headers"), Vec::new(), |h| {
                    header_pairs(h, "http.response.start")
                })?;
                let wants_trailers = flag(message, intern!(py, "trailers"))?;
                let mut st = self.shared.state();
                if st.closed {
                    return Ok(SEND_DONE);
                }
                if st.started {
                    return Err(PyRuntimeError::new_err(
                        "http.response.start sent twice: the response already started",
                    ));
                }
                st.started = true;
                st.wants_trailers = wants_trailers;
                st.head = Some(Head { status, headers });
                // Not woken: the server sends a head with the body's first bytes (or its end),
                // so only a body message wakes it, once for both (a wake is an eventfd write and
                // a serving thread's turn).
                Ok(SEND_DONE)
            }
            "http.response.body" => {
                let body = field_or(message, intern!(py, "body"), Vec::new(), |b| {
                    byte_string(b)
                        .map_err(|_| PyTypeError::new_err("http.response.body: body must be bytes"))
                })?;
                let more = flag(message, intern!(py, "more_body"))?;
                self.push_body(body, more)
            }
            "http.response.zerocopysend" => self.zerocopysend(message),
            "http.response.pathsend" => self.pathsend(message),
            "http.response.trailers" => self.trailers(message),
            other => Err(PyRuntimeError::new_err(format!(
                "unexpected ASGI message {other:?} for an http request: send \
                 http.response.start, then http.response.body"
            ))),
        }
    }

    /// Registers `fut` to be resumed when the server took the queued bytes (the accept, the
    /// WebSocket has room again); false if that happened already (or the request is over).
    fn wait_send(&self, fut: PyObject) -> bool {
        if let Some(ws) = self.shared.ws.as_ref().filter(|ws| ws.accepted()) {
            return ws.wait_writable(fut);
        }
        let mut st = self.shared.state();
        if st.closed || (st.queued <= SEND_HIGH_WATER && st.accept.is_none() && !st.accepting) {
            return false;
        }
        st.send_waiter = Some(fut);
        true
    }

    /// The app's coroutine ended: with the formatted exception it raised, or `None`.
    #[pyo3(signature = (error))]
    fn finish(&self, error: Option<String>) {
        let shared = &self.shared;
        if let Some(ws) = shared.ws.as_ref().filter(|ws| ws.accepted()) {
            // An accepted WebSocket the app left open is closed: 1011 if it raised.
            let code = if error.is_some() {
                websocket::CLOSE_INTERNAL_ERROR
            } else {
                websocket::CLOSE_NORMAL
            };
            ws.close(code, "");
        }
        let mut st = shared.state();
        st.finished = true;
        let refused = shared.ws.is_some() && !st.started && error.is_none() && !st.closed;
        if refused {
            // A WebSocket app that returns without accepting refuses the handshake: 403.
            st.started = true;
            st.complete = true;
            st.head = Some(Head {
                status: 403,
                headers: Vec::new(),
            });
        }
        // An exception is logged even when the response is over: Starlette answers 500 itself and
        // then re-raises, often after the server closed the response (uvicorn logs it too). A
        // cancel (the request ended first) arrives as `None`.
        let message = match error {
            Some(tb) => Some(format!("ASGI app {} raised:\n{tb}", shared.label)),
            None if st.closed || st.complete => None,
            None if !st.started => Some(format!(
                "ASGI app {} returned without starting a response (no http.response.start)",
                shared.label
            )),
            None if st.body_ended => Some(format!(
                "ASGI app {} returned before completing its response (http.response.start had \
                 trailers: True, and no http.response.trailers with more_trailers false followed)",
                shared.label
            )),
            None => Some(format!(
                "ASGI app {} returned before completing its response (the last \
                 http.response.body had more_body true)",
                shared.label
            )),
        };
        if message.is_some() && !st.complete {
            st.failed = true;
        }
        // A complete response was woken for by its last body message, and a closed one is over.
        let wake = refused || (!st.complete && !st.closed);
        drop(st);
        if let Some(message) = message {
            shared.logger.error(&message);
        }
        if wake {
            shared.waker.wake();
        }
    }
}

impl Channel {
    /// Queues response body bytes (`http.response.body`, or a `zerocopysend` that is not the
    /// last) and wakes the request.
    fn push_body(&self, body: Vec<u8>, more: bool) -> PyResult<u8> {
        let mut st = self.shared.state();
        if st.closed {
            // The client is gone or the response was cut: nothing to send it to.
            return Ok(SEND_DONE);
        }
        if !st.started {
            return Err(PyRuntimeError::new_err(
                "http.response.body before http.response.start",
            ));
        }
        if st.body_ended {
            return Err(PyRuntimeError::new_err(
                "http.response.body after the body ended (more_body was false)",
            ));
        }
        st.queued += body.len();
        if !body.is_empty() {
            st.chunks.push_back(body);
        }
        if !more {
            st.end_body();
        }
        let wait = st.queued > SEND_HIGH_WATER;
        drop(st);
        self.shared.waker.wake();
        Ok(if wait { SEND_WAIT } else { SEND_DONE })
    }
}

impl State {
    /// The body ended: the response is complete unless trailers are to follow.
    fn end_body(&mut self) {
        self.body_ended = true;
        self.complete = !self.wants_trailers;
    }
}

/// `message[key]`, `None` when absent: a dict (what apps send) is read without raising a
/// `KeyError` for an absent optional key, any other mapping through `__getitem__`.
fn field<'py>(
    message: &Bound<'py, PyAny>,
    key: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    match message.downcast::<PyDict>() {
        Ok(dict) => dict.get_item(key),
        Err(_) => match message.get_item(key) {
            Ok(value) => Ok(Some(value)),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(message.py()) => Ok(None),
            Err(e) => Err(e),
        },
    }
}

/// An optional field of an app's message: `None` when the key is absent or its value is `None`
/// (as the spec allows for `subprotocol`, and as every optional field is read).
fn present<'py>(
    message: &Bound<'py, PyAny>,
    key: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(field(message, key)?.filter(|value| !value.is_none()))
}

/// `read(message[key])`, or `default` when the field is not [`present`].
fn field_or<'py, T>(
    message: &Bound<'py, PyAny>,
    key: &Bound<'py, PyString>,
    default: T,
    read: impl FnOnce(&Bound<'py, PyAny>) -> PyResult<T>,
) -> PyResult<T> {
    present(message, key)?.map_or(Ok(default), |value| read(&value))
}

/// An optional flag (`more_body`, `trailers`, `more_trailers`): its truth, false when absent.
fn flag<'py>(message: &Bound<'py, PyAny>, key: &Bound<'py, PyString>) -> PyResult<bool> {
    field_or(message, key, false, |value| value.is_truthy())
}

/// A byte string's bytes, copied. `bytes` and `bytearray` are copied whole: pyo3's
/// `extract::<Vec<u8>>()` walks any sequence item by item, a Python int per byte (the bare
/// hello spent about 4,000 of its 76,000 instructions per request so). Anything else (a
/// `memoryview`, a list of ints) still goes that way.
pub(crate) fn byte_string(object: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = object.downcast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(array) = object.downcast::<PyByteArray>() {
        return Ok(array.to_vec());
    }
    object.extract()
}

/// ASGI headers (an iterable of `[name, value]` byte strings) as owned pairs.
fn header_pairs(headers: &Bound<'_, PyAny>, kind: &str) -> PyResult<Headers> {
    let bad = || {
        PyTypeError::new_err(format!(
            "{kind}: headers must be an iterable of [name, value] byte strings"
        ))
    };
    let mut pairs = Vec::new();
    for pair in headers.iter()? {
        let pair = pair?;
        let name = byte_string(&pair.get_item(0)?).map_err(|_| bad())?;
        let value = byte_string(&pair.get_item(1)?).map_err(|_| bad())?;
        pairs.push((name, value));
    }
    Ok(pairs)
}
