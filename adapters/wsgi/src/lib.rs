//! `libwsgi.so`: a webserver app that embeds CPython and serves a PEP 3333 (WSGI) application —
//! `webserver wsgi:app flaskapp:app` does what the article's `python webserver2.py flaskapp:app`
//! does, on this server's threads, workers and hot swap.
//!
//! The ABI was modelled on PEP 3333, so the bridge is mostly a translation:
//!
//! | ABI | WSGI |
//! |---|---|
//! | `init` (once per worker) | start Python, import `module:callable` ([`interpreter`]) |
//! | `call` | `environ` ([`environ`]), `start_response` ([`start_response`]), call the app |
//! | host `read` | `wsgi.input` ([`input`]) |
//! | host `write` | the `write` callable |
//! | host `log` | `wsgi.errors` ([`streams`]) |
//! | body `next` / `close` | iterate the result / its `close()` ([`body`]) |
//!
//! It is written against the raw ABI rather than app-abi's safe `App` trait because PEP 3333 needs
//! host I/O from inside the iteration (a generator may call `start_response` or read `wsgi.input`
//! lazily), which the header allows in `next` but the safe layer's body iterators cannot reach.
//!
//! Every entry point runs inside [`boundary`]: a Rust panic never unwinds into the server, a
//! Python exception never escapes as anything but a logged traceback and an error code.

mod asgi;
mod body;
mod body_errors;
mod config;
mod environ;
mod exchange;
mod handoff;
mod init_args;
mod input;
mod interpreter;
mod python_output;
mod recording;
mod sched_slice;
mod source_pin;
mod start_response;
mod startup;
mod streams;

use app_abi::raw::{
    WsApp, WsBody, WsInit, WsRequest, WS_ABI_MAJOR, WS_ABI_MINOR, WS_APP_MAGIC, WS_ERR_APP,
    WS_ERR_INVALID, WS_ERR_STATE, WS_LENGTH_UNKNOWN, WS_OK,
};
use app_abi::{Logger, Request};
use core::ffi::c_void;
use pyo3::prelude::*;
use python_embed::python_thread;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// The descriptor: `webserver wsgi:app module:callable`.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static app: WsApp = WsApp {
    magic: WS_APP_MAGIC,
    abi_major: WS_ABI_MAJOR,
    abi_minor: WS_ABI_MINOR,
    size: core::mem::size_of::<WsApp>() as u32,
    flags: 0,
    name: c"wsgi".as_ptr(),
    version: concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast(),
    init: Some(init),
    call: Some(call),
    shutdown: Some(shutdown),
};

/// The app state behind `*state`: the WSGI callable and what every request shares.
pub(crate) struct WsgiApp {
    callable: PyObject,
    constants: environ::Constants,
    /// `module:callable`, for log lines.
    label: Arc<str>,
    logger: Logger,
}

/// Runs `f`; a panic becomes `fallback` and one log line instead of unwinding into the server.
fn boundary<R>(logger: Option<Logger>, fallback: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(non-string panic)".to_owned());
            if let Some(logger) = logger {
                let _ = catch_unwind(AssertUnwindSafe(|| {
                    logger.error(&format!("internal error in the WSGI bridge: {msg}"))
                }));
            }
            // A payload whose Drop panics must not unwind either.
            if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                std::mem::forget(again);
            }
            fallback
        }
    }
}

/// `ws_app.init`: starts Python and imports the app.
///
/// # Safety
/// `init` and `state` as the header specifies.
unsafe extern "C" fn init(init: *const WsInit, state: *mut *mut c_void) -> i32 {
    if init.is_null() || state.is_null() {
        return WS_ERR_INVALID;
    }
    // SAFETY: non-null and valid for this call (the header).
    let raw = unsafe { &*init };
    // SAFETY: `host` and `log_ctx` of a WsInit are process-lifetime (the header).
    let logger = unsafe { Logger::from_raw(raw.host, raw.log_ctx) };
    let result = boundary(Some(logger), Err("panic while loading".to_owned()), || {
        // SAFETY: `raw` is the server's WsInit, valid during this call.
        let args = unsafe { init_args::read(raw) };
        load(&args, logger)
    });
    match result {
        Ok(wsgi) => {
            // SAFETY: `state` is non-null and writable (the header).
            unsafe { *state = Box::into_raw(Box::new(wsgi)).cast() };
            WS_OK
        }
        Err(msg) => {
            // SAFETY: `raw` is the server's WsInit with its error buffer.
            unsafe { raw.write_error(&msg) };
            WS_ERR_APP
        }
    }
}

fn load(args: &[String], logger: Logger) -> Result<WsgiApp, String> {
    let config = config::Config::from_args_and_env(args, |k| std::env::var(k).ok())?;
    interpreter::start(&config)?;
    handoff::enable(config.handoff);
    Python::with_gil(|py| {
        python_output::install(py, logger).map_err(|err| {
            format!(
                "cannot route Python's output into the server's log: {}",
                interpreter::last_line(py, &err)
            )
        })?;
        let callable = interpreter::load_app(py, &config.target).map_err(|err| {
            // The server prints the one-line error; the whole traceback is there for RUST_LOG=debug.
            if let Some(tb) = &err.traceback {
                logger.debug(&format!("WSGI app {} failed to load:\n{tb}", config.target));
            }
            err.message
        })?;
        source_pin::check(py)?;
        logger.info(&startup::line(py, &config));
        Ok(WsgiApp {
            callable,
            constants: environ::Constants::new(py),
            label: Arc::from(config.target.to_string()),
            logger,
        })
    })
}

/// `ws_app.call`: one request through the WSGI callable — here, or queued for the thread that
/// is running the app ([`handoff`]).
///
/// # Safety
/// `state` from [`init`]; `request` and `body` valid as the header specifies (the request until
/// the body's `close` returns).
unsafe extern "C" fn call(state: *mut c_void, request: *const WsRequest, body: *mut WsBody) -> i32 {
    if state.is_null() || request.is_null() || body.is_null() {
        return WS_ERR_STATE;
    }
    // SAFETY: `state` is the WsgiApp from `init`, alive until `shutdown`, only shared here.
    let wsgi = unsafe { &*state.cast::<WsgiApp>() };
    // SAFETY: non-null and valid until the body's close (the header).
    let raw = unsafe { &*request };
    boundary(Some(wsgi.logger), WS_ERR_APP, || {
        // SAFETY: the header's contract for `raw`; the exchange stops using `io` once the
        // request ends (entered only in `call` and `next`).
        let Some(exchange) = (unsafe { exchange::Exchange::new(raw) }) else {
            return WS_ERR_STATE;
        };
        let exchange = Arc::new(exchange);
        // SAFETY: as above; the environ is valid until the body's close.
        let vars = unsafe { Request::from_raw(raw) }.vars();
        sched_slice::fit(handoff::calls_are_short());
        if let Some(queued) = handoff::queue(wsgi, raw, vars, &exchange) {
            // SAFETY: `body` is non-null and writable (the header), in this `call`.
            unsafe { hand_over(body, queued, WS_LENGTH_UNKNOWN) };
            return WS_OK;
        }
        let holding = handoff::Holding::begin();
        let _active = exchange.enter();
        python_thread::with_gil(|py| {
            holding.in_app();
            let code = match run(py, wsgi, raw, &exchange) {
                Ok(prepared) => {
                    if prepared.body.is_complete() {
                        holding.own_request_done();
                    }
                    // SAFETY: `body` is non-null and writable (the header), in this `call`.
                    unsafe { hand_over(body, prepared.body, prepared.length_hint) };
                    WS_OK
                }
                Err(code) => {
                    holding.own_request_done();
                    code
                }
            };
            // Before the GIL goes: the requests queued meanwhile.
            handoff::drain(py);
            code
        })
    })
}

/// One request through the WSGI callable, with the GIL, on the thread marked active in
/// `exchange`: its environ, `start_response`, the call, the body's first item. `Err`: the
/// failure was logged, the code is the request's.
pub(crate) fn run(
    py: Python<'_>,
    wsgi: &WsgiApp,
    raw: &WsRequest,
    exchange: &Arc<exchange::Exchange>,
) -> Result<body::Prepared, i32> {
    let fail = |what: &str, err: &PyErr| {
        exchange.log_app_failure(&format!(
            "WSGI app {} {what}\n{}",
            wsgi.label,
            interpreter::traceback(py, err)
        ));
        WS_ERR_APP
    };
    // SAFETY: the header's contract for `raw`: valid until the body's close, which has not come.
    let req = unsafe { Request::from_raw(raw) };
    let environ = environ::build(py, raw, req.vars(), exchange, &wsgi.constants)
        .map_err(|err| fail("could not get its environ:", &err))?;
    let start_response = Py::new(py, start_response::StartResponse::new(Arc::clone(exchange)))
        .map_err(|err| fail("could not get start_response:", &err))?;
    let timer = handoff::CallTimer::start();
    let result = wsgi.callable.call1(py, (environ, start_response));
    timer.stop();
    let result = result.map_err(|err| fail("raised:", &err))?;
    let result = result.bind(py);
    body::prepare(exchange, result, &wsgi.label).map_err(|err| {
        let code = fail("broke PEP 3333:", &err);
        if let Err(err) = body::close_iterable(py, result) {
            fail("raised in its iterable's close():", &err);
        }
        code
    })
}

/// What a response body's `ctx` points to: an app's body ([`body::BodyState`]) or a queued
/// request's ([`handoff::DeferredBody`]), both served through [`body_next`] and [`body_close`].
pub(crate) trait ServerBody {
    /// The server's `next`: 1 with `*chunk` set, 0 at the end, `WS_PENDING` or an error code.
    fn next_chunk(&mut self, chunk: &mut app_abi::raw::WsBytes) -> i32;
    /// The server's `close`: the body's last call.
    fn close(self: Box<Self>);
}

/// Hands `ctx` to the server as the response body.
///
/// # Safety
/// `body` is the `WsBody` of the `call` running now, non-null and writable (the header).
unsafe fn hand_over<B: ServerBody>(body: *mut WsBody, ctx: Box<B>, length_hint: u64) {
    // SAFETY: the caller's contract; only the app's fields are written.
    unsafe {
        (*body).ctx = Box::into_raw(ctx).cast();
        (*body).next = Some(body_next::<B>);
        (*body).close = Some(body_close::<B>);
        (*body).length_hint = length_hint;
    }
}

/// `ws_body.next`.
///
/// # Safety
/// `ctx` is a live `B` from [`hand_over`], `chunk` writable; never concurrent for one ctx.
unsafe extern "C" fn body_next<B: ServerBody>(
    ctx: *mut c_void,
    chunk: *mut app_abi::raw::WsBytes,
) -> i32 {
    if ctx.is_null() || chunk.is_null() {
        return WS_ERR_INVALID;
    }
    boundary(None, WS_ERR_APP, || {
        // SAFETY: exclusive access to the live body and a writable chunk (the contract).
        unsafe { (*ctx.cast::<B>()).next_chunk(&mut *chunk) }
    })
}

/// `ws_body.close`: the body's own `close` (the iterable's `close()`), then it is freed.
///
/// # Safety
/// `ctx` is a `B` from [`hand_over`], closed this once.
unsafe extern "C" fn body_close<B: ServerBody>(ctx: *mut c_void) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: leaked by `hand_over`, reclaimed exactly once here.
    let state = unsafe { Box::from_raw(ctx.cast::<B>()) };
    boundary(None, (), || state.close());
}

/// `ws_app.shutdown`: flushes Python's output streams and releases the app (Python itself is not
/// finalised; see [`interpreter`]).
///
/// # Safety
/// `state` from [`init`], after the last request.
unsafe extern "C" fn shutdown(state: *mut c_void) {
    if state.is_null() {
        return;
    }
    // SAFETY: reclaimed exactly once, after the last request (the header).
    let wsgi = unsafe { Box::from_raw(state.cast::<WsgiApp>()) };
    let logger = wsgi.logger;
    boundary(Some(logger), (), || handoff::stop(logger));
    boundary(Some(logger), (), || {
        Python::with_gil(|py| {
            for stream in ["stdout", "stderr"] {
                let _ = py
                    .import_bound("sys")
                    .and_then(|sys| sys.getattr(stream)?.call_method0("flush"));
            }
            drop(wsgi);
        })
    });
}
