//! The response body: the app's iterable, pulled by the server's `next` and closed by its `close`.
//!
//! PEP 3333 rules enforced here: every item is `bytes` (a `str` item is the app's error: logged,
//! and a 500 if nothing was sent yet); `start_response` must have been called before the first
//! non-empty item; the iterable's `close()` is called exactly once, whatever happened.
//!
//! A plain `list` or `tuple` of bytes (what WebOb/Pyramid and most simple apps return) is checked
//! and measured in `call`: the server then gets its exact length (Content-Length) and hands out
//! its chunks without taking the GIL again.
//!
//! Any other iterable (Flask's and Django's responses) has its first item pulled in `call`, while
//! the GIL is held anyway, and is closed in the `next` that finds it exhausted, in that same GIL
//! hold. Pulling the first item early delays no block (PEP 3333 forbids that): it is handed to the
//! server in the very next `next`. Once the items add up to the `Content-Length` the app declared,
//! the iterable is not asked for more (PEP 3333: the server "should stop iterating over the
//! response when enough data has been sent") and is closed in the same GIL hold: a Flask or
//! Django response, which declares its length, takes the GIL once per request (`call`), where
//! iterating it to its end took it twice (`call`, the last `next`) — and with several serving
//! threads, that second take waited for another thread's whole request while the response,
//! complete, waited unsent (see [`python_embed::python_thread`]).

use crate::exchange::Exchange;
use crate::interpreter::traceback;
use crate::start_response::type_name;
use crate::streams::FileWrapper;
use app_abi::raw::{WsBytes, WS_ERR_APP, WS_FILE_RANGES, WS_LENGTH_UNKNOWN};
use app_abi::LogLevel;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyIterator, PyList, PyTuple};
use std::sync::Arc;

/// One body chunk: a `bytes` object kept alive while the server reads its buffer (bytes objects
/// are immutable, so the pointer stays valid as long as the reference is held — without the GIL).
struct Chunk {
    _owner: Py<PyBytes>,
    ptr: *const u8,
    len: usize,
}

impl Chunk {
    fn new(bytes: &Bound<'_, PyBytes>) -> Chunk {
        let slice = bytes.as_bytes();
        Chunk {
            ptr: slice.as_ptr(),
            len: slice.len(),
            _owner: bytes.clone().unbind(),
        }
    }
}

enum Source {
    /// A list/tuple checked in `call`.
    Prefetched(std::vec::IntoIter<Chunk>),
    /// Any other iterable: items are pulled (and checked) with the GIL in `next`.
    Iter(Py<PyIterator>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    Done,
    Failed,
}

/// What the server's `WsBody::ctx` points to.
pub(crate) struct BodyState {
    exchange: Arc<Exchange>,
    /// The app's return value, whose `close()` the server's `close` calls (`None` for a plain
    /// list or tuple, which has none).
    iterable: Option<PyObject>,
    source: Source,
    /// The chunk last handed to the server, alive until the next `next` or `close`.
    current: Option<Chunk>,
    /// The first item of an iterable, pulled in `call`: the first `next` hands it out.
    first: Option<Pulled>,
    phase: Phase,
    /// `module:callable`, for log lines.
    label: Arc<str>,
}

/// The body's shape as `call` decided it.
pub(crate) struct Prepared {
    pub(crate) body: Box<BodyState>,
    pub(crate) length_hint: u64,
}

fn not_bytes(item: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "the response body must be an iterable of bytes (PEP 3333), but it yielded a {}: {}",
        type_name(item),
        item.repr()
            .map(|r| r.to_string().chars().take(60).collect::<String>())
            .unwrap_or_default()
    ))
}

fn not_started() -> PyErr {
    PyRuntimeError::new_err(
        "the app returned its body without calling start_response(status, headers) first",
    )
}

/// Turns the app's return value into the server's body. On `Err` the caller still owes
/// `result.close()` ([`close_iterable`]).
pub(crate) fn prepare(
    exchange: &Arc<Exchange>,
    result: &Bound<'_, PyAny>,
    label: &Arc<str>,
) -> PyResult<Prepared> {
    if handed_over(exchange, result) {
        // The server sends the file (it holds its own descriptor): closing the app's iterable
        // now closes the app's file, as PEP 3333 asks once the response is complete.
        let mut body = Box::new(BodyState {
            exchange: Arc::clone(exchange),
            iterable: Some(result.clone().unbind()),
            source: Source::Prefetched(Vec::new().into_iter()),
            current: None,
            first: None,
            phase: Phase::Done,
            label: Arc::clone(label),
        });
        body.finish(result.py());
        return Ok(Prepared {
            body,
            length_hint: WS_LENGTH_UNKNOWN,
        });
    }
    let sequence = if let Ok(list) = result.downcast_exact::<PyList>() {
        Some(list.iter().collect::<Vec<_>>())
    } else if let Ok(tuple) = result.downcast_exact::<PyTuple>() {
        Some(tuple.iter().collect())
    } else {
        None
    };
    let (source, iterable, length_hint, first) = match sequence {
        Some(items) => {
            let mut chunks = Vec::with_capacity(items.len());
            let mut total = 0u64;
            for item in &items {
                let bytes = item.downcast::<PyBytes>().map_err(|_| not_bytes(item))?;
                if !bytes.as_bytes().is_empty() {
                    total += bytes.as_bytes().len() as u64;
                    chunks.push(Chunk::new(bytes));
                }
            }
            let head = exchange.head();
            if !head.started {
                return Err(not_started());
            }
            if !chunks.is_empty() {
                exchange.mark_body_sent(total as usize);
            }
            // Bytes already sent through write() are part of the body too: length unknown then.
            let hint = if head.body_sent {
                WS_LENGTH_UNKNOWN
            } else {
                total
            };
            (Source::Prefetched(chunks.into_iter()), None, hint, None)
        }
        None => {
            let iter = PyIterator::from_bound_object(result).map_err(|_| {
                PyTypeError::new_err(format!(
                    "the app returned a {}, not an iterable of bytes (PEP 3333)",
                    type_name(result)
                ))
            })?;
            // Pulled here, in the caller's `call` (GIL held, this thread marked active), so a
            // generator may still call start_response, read wsgi.input or write() in it.
            let first = pull(result.py(), &iter, exchange);
            (
                Source::Iter(iter.unbind()),
                Some(result.clone().unbind()),
                WS_LENGTH_UNKNOWN,
                Some(first),
            )
        }
    };
    let mut body = Box::new(BodyState {
        exchange: Arc::clone(exchange),
        iterable,
        source,
        current: None,
        first,
        phase: Phase::Open,
        label: Arc::clone(label),
    });
    match body.first {
        // Empty, or all the declared length in one item: the iteration is complete already.
        Some(Ok(None)) => body.finish(result.py()),
        Some(Ok(Some(_))) if exchange.head().body_complete() => body.finish(result.py()),
        _ => {}
    }
    Ok(Prepared { body, length_hint })
}

impl BodyState {
    /// Nothing of the app is left to run: a list, or an iterable already iterated and closed
    /// (the server's `next`s only hand out what is here, without the GIL).
    pub(crate) fn is_complete(&self) -> bool {
        self.iterable.is_none()
    }

    /// The next item of an iterable, with the GIL; the iterable is closed in the same hold
    /// ([`BodyState::finish`]) once exhausted or once its items reach the declared length.
    fn pull_from_app(&mut self) -> Pulled {
        let exchange = Arc::clone(&self.exchange);
        let _active = exchange.enter();
        crate::python_thread::with_gil_continuing(|py| {
            let pulled = match &self.source {
                Source::Iter(iter) => pull(py, iter.bind(py), &exchange),
                Source::Prefetched(_) => Ok(None),
            };
            let complete = match &pulled {
                Ok(None) => true,
                Ok(Some(_)) => exchange.head().body_complete(),
                Err(_) => false,
            };
            if complete {
                self.finish(py);
            }
            pulled
        })
    }

    /// The iteration is complete: calls the iterable's `close()` (PEP 3333: upon completion of
    /// the request) and releases the Python objects while the GIL is held, so the server's
    /// `close` has nothing left that needs it.
    fn finish(&mut self, py: Python<'_>) {
        self.current = None;
        self.source = Source::Prefetched(Vec::new().into_iter());
        if let Some(iterable) = self.iterable.take() {
            if let Err(err) = close_iterable(py, iterable.bind(py)) {
                self.exchange.log(
                    LogLevel::Error,
                    &format!(
                        "WSGI app {}: its iterable's close() raised\n{}",
                        self.label,
                        traceback(py, &err)
                    ),
                );
            }
        }
    }
}

impl crate::ServerBody for BodyState {
    /// The server's `next`: 1 with `*chunk` set, 0 at the end, `WS_ERR_APP` once the app failed.
    fn next_chunk(&mut self, chunk: &mut WsBytes) -> i32 {
        if self.phase != Phase::Open {
            return if self.phase == Phase::Done {
                0
            } else {
                WS_ERR_APP
            };
        }
        let next = match self.first.take() {
            Some(first) => first,
            None => match &mut self.source {
                Source::Prefetched(chunks) => Ok(chunks.next()),
                Source::Iter(_) => self.pull_from_app(),
            },
        };
        match next {
            Ok(Some(next)) => {
                *chunk = WsBytes {
                    ptr: next.ptr,
                    len: next.len,
                };
                // The previous chunk is released only now: the server is done with it.
                self.current = Some(next);
                1
            }
            Ok(None) => {
                self.phase = Phase::Done;
                0
            }
            Err((message, traceback)) => {
                self.phase = Phase::Failed;
                self.exchange
                    .log_app_failure(&format!("WSGI app {}: {message}\n{traceback}", self.label));
                WS_ERR_APP
            }
        }
    }

    /// The server's `close`: calls the iterable's `close()` (PEP 3333) unless the iteration
    /// completed and did, then releases everything.
    fn close(self: Box<Self>) {
        if self.iterable.is_none() {
            // A plain list/tuple, or an iterable already closed: nothing to call. Releasing bytes
            // objects without the GIL is deferred by PyO3 to the next time a thread holds it.
            drop(self);
            return;
        }
        crate::python_thread::with_gil_continuing(|py| {
            let BodyState {
                exchange,
                iterable,
                label,
                ..
            } = *self;
            if let Some(iterable) = iterable {
                if let Err(err) = close_iterable(py, iterable.bind(py)) {
                    exchange.log(
                        LogLevel::Error,
                        &format!(
                            "WSGI app {label}: its iterable's close() raised\n{}",
                            traceback(py, &err)
                        ),
                    );
                }
            }
        });
    }
}

/// The app returned a `wsgi.file_wrapper` of a real file — itself (Django's `FileResponse`, a
/// plain app), or inside werkzeug's range wrapper (Flask's `send_file` answering a Range with
/// 206) — and the server took the file (ABI 1.2 `send_file`). Not before `start_response` nor
/// after bytes went out by `write()`: then it is iterated like any body.
fn handed_over(exchange: &Exchange, result: &Bound<'_, PyAny>) -> bool {
    let head = exchange.head();
    if !head.started || head.body_sent {
        return false;
    }
    let py = result.py();
    if let Ok(wrapper) = result.downcast::<FileWrapper>() {
        // A whole file: the server answers Range on it (the app answered 200 for all of it).
        return wrapper
            .borrow()
            .hand_over(py, exchange, None, WS_LENGTH_UNKNOWN, WS_FILE_RANGES);
    }
    // werkzeug's `_RangeWrapper(iterable, start_byte, byte_range)`: the app's own 206.
    let is_range_wrapper = result
        .get_type()
        .name()
        .is_ok_and(|name| name == "_RangeWrapper");
    if !is_range_wrapper {
        return false;
    }
    let attr = |name| result.getattr(name).ok();
    let (Some(inner), Some(start), Some(length)) =
        (attr("iterable"), attr("start_byte"), attr("byte_range"))
    else {
        return false;
    };
    let (Ok(wrapper), Ok(start)) = (inner.downcast::<FileWrapper>(), start.extract::<u64>()) else {
        return false;
    };
    let length = length.extract::<u64>().unwrap_or(WS_LENGTH_UNKNOWN);
    wrapper
        .borrow()
        .hand_over(py, exchange, Some(start), length, 0)
}

/// One item of the app's iterable: a chunk, `None` at its end, or `Err((what, traceback))` when
/// the app raised or broke a rule.
type Pulled = Result<Option<Chunk>, (String, String)>;

/// One item of a Python iterable, checked; `Err((what, traceback))` when the app broke a rule.
fn pull(py: Python<'_>, iter: &Bound<'_, PyIterator>, exchange: &Exchange) -> Pulled {
    let fail = |err: PyErr, what: &str| (what.to_owned(), traceback(py, &err));
    for item in iter.clone() {
        let item = item.map_err(|e| fail(e, "its iterable raised"))?;
        let bytes = item
            .downcast::<PyBytes>()
            .map_err(|_| fail(not_bytes(&item), "broke PEP 3333"))?;
        if bytes.as_bytes().is_empty() {
            continue;
        }
        if !exchange.head().started {
            return Err(fail(not_started(), "broke PEP 3333"));
        }
        exchange.mark_body_sent(bytes.as_bytes().len());
        return Ok(Some(Chunk::new(bytes)));
    }
    if !exchange.head().started {
        return Err(fail(not_started(), "broke PEP 3333"));
    }
    Ok(None)
}

/// Calls `close()` on the app's iterable if it has one.
pub(crate) fn close_iterable(_py: Python<'_>, iterable: &Bound<'_, PyAny>) -> PyResult<()> {
    if iterable.hasattr("close")? {
        iterable.call_method0("close")?;
    }
    Ok(())
}
