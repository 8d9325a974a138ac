//! The `extern "C"` trampolines behind [`crate::export_app!`] and the one panic boundary they all
//! run in.
//!
//! Ownership across the boundary:
//! - app state: `Box<AppState<T>>` leaked into `*state` by `init`, borrowed by `call`, reclaimed
//!   and dropped by `shutdown` (after `T::shutdown`);
//! - body: `Box<BodyState>` leaked into `WsBody::ctx` by `call`, borrowed by `next`, reclaimed by
//!   `close`, which drops the body (running its `on_close` hooks) and keeps the emptied box for
//!   the thread's next `call` (one allocation fewer per request), and a small owned body's
//!   buffer for the thread's next `Body::copy_from_slice`. A chunk handed out by `next`
//!   points into that box (or into static memory) and stays valid until the next `next`/`close`.

use super::deferred::{BodyIo, Next};
use super::log::{InitContext, Logger};
use super::request::Request;
use super::response::{Body, BodyKind};
use super::App;
use crate::raw::{
    WsApp, WsBody, WsBytes, WsHost, WsInit, WsRequest, WS_ABI_MAJOR, WS_ABI_MINOR, WS_APP_MAGIC,
    WS_ERR_APP, WS_ERR_INVALID, WS_ERR_STATE, WS_OK, WS_PENDING,
};
use core::ffi::{c_char, c_void};
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, turning a panic into `fallback` after handing its message to `on_panic`.
///
/// This is the crate's only panic boundary (rustls-ffi's `ffi_panic_boundary`): every `extern "C"`
/// function below is one call to it. `on_panic` and the drop of the payload run inside their own
/// `catch_unwind`, so nothing can unwind out of here; a panic escaping an `extern "C"` function
/// would abort the server (Rust ≥ 1.81).
pub(super) fn boundary<R>(fallback: R, f: impl FnOnce() -> R, on_panic: impl FnOnce(&str)) -> R {
    install_quiet_hook();
    let outer = IN_BOUNDARY.with(|b| b.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_BOUNDARY.with(|b| b.set(outer));
    match result {
        Ok(r) => r,
        Err(payload) => {
            let location = PANIC_LOCATION.with(|l| l.take()).unwrap_or_default();
            let message = format!("{} (at {location})", panic_message(&*payload));
            let _ = catch_unwind(AssertUnwindSafe(|| on_panic(&message)));
            if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                // A payload whose Drop panics: leak the second payload rather than loop.
                std::mem::forget(again);
            }
            fallback
        }
    }
}

thread_local! {
    /// The box of the last body closed on this thread, emptied, for the next `call` here.
    static SPARE_BODY: std::cell::Cell<Option<Box<BodyState>>> = const { std::cell::Cell::new(None) };
    /// Set while app code runs inside [`boundary`]: its panics are reported through the host log.
    static IN_BOUNDARY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Where the last caught panic happened, recorded by the hook for the log line.
    static PANIC_LOCATION: std::cell::Cell<Option<String>> = const { std::cell::Cell::new(None) };
}

/// A panic caught at the boundary is logged once, through the host, tagged with the app; the
/// default hook would also print it (with a backtrace if RUST_BACKTRACE is set) to the server's
/// stderr, outside its log. Panics elsewhere (threads the app started) keep the previous hook.
fn install_quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_BOUNDARY.with(|b| b.get()) {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                PANIC_LOCATION.with(|l| l.set(location));
            } else {
                previous(info);
            }
        }));
    });
}

/// The message of a `panic!("...")` / `panic!("{}", x)` payload.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}

/// The app state behind `*state`: the app and the logger from `init` (for `shutdown`, which has no
/// other way to log).
struct AppState<T> {
    app: T,
    logger: Logger,
}

/// The body behind `WsBody::ctx`.
struct BodyState {
    body: Body,
    /// The chunk last returned by an `Iter` body, kept alive until the next `next` or `close`.
    current: Vec<u8>,
    phase: Phase,
    logger: Logger,
    /// The request's vtable and io handle, for a `Deferred` body's host calls during `next`
    /// (valid until `close`, per the header).
    host: *const WsHost,
    io: *mut c_void,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// More chunks may come.
    Open,
    /// `next` returned 0: it keeps returning 0.
    Done,
    /// The iterator panicked: `next` keeps returning `WS_ERR_APP`.
    Failed,
}

impl BodyState {
    /// A boxed state for `body`: the thread's spare box if it has one, else a new one.
    fn boxed(body: Body, logger: Logger, host: *const WsHost, io: *mut c_void) -> Box<BodyState> {
        match SPARE_BODY.with(std::cell::Cell::take) {
            Some(mut spare) => {
                spare.body = body;
                spare.phase = Phase::Open;
                spare.logger = logger;
                spare.host = host;
                spare.io = io;
                spare
            }
            None => Box::new(BodyState {
                body,
                current: Vec::new(),
                phase: Phase::Open,
                logger,
                host,
                io,
            }),
        }
    }

    /// `close`: drops the body (its `on_close` hooks run here) and keeps the box as the thread's
    /// spare.
    fn release(mut self: Box<BodyState>) {
        // Owned bytes go first (as dropping the body would), kept for the thread's next copy.
        if let BodyKind::Bytes(bytes) = std::mem::replace(self.body.kind_mut(), BodyKind::Empty) {
            super::response::recycle_bytes(bytes);
        }
        self.body = Body::empty();
        // Not kept: an iterator's last chunk may be large.
        self.current = Vec::new();
        self.host = core::ptr::null();
        self.io = core::ptr::null_mut();
        SPARE_BODY.with(|spare| spare.set(Some(self)));
    }

    /// One `next` step: `1` with `*chunk` set, `0` at the end, `WS_ERR_APP` after a failure.
    fn next_chunk(&mut self, chunk: &mut WsBytes) -> i32 {
        match self.phase {
            Phase::Open => {}
            Phase::Done => return 0,
            Phase::Failed => return WS_ERR_APP,
        }
        let bytes: &[u8] = match self.body.kind_mut() {
            BodyKind::Empty => &[],
            BodyKind::Static(b) => b,
            BodyKind::Bytes(b) => b,
            BodyKind::Deferred(body) => {
                // SAFETY: `host` is null or the request's vtable, valid (process-lifetime) until
                // `close`, which has not run (we are in `next`).
                let Some(host) = (unsafe { self.host.as_ref() }) else {
                    self.logger.error("deferred body without a host vtable");
                    self.phase = Phase::Failed;
                    return WS_ERR_APP;
                };
                // SAFETY: `io` is this request's handle and `next` runs on this thread now.
                let mut io = unsafe { BodyIo::new(host, self.io, self.logger) };
                loop {
                    match body.next(&mut io) {
                        // Skipped: an empty chunk would end a chunked body on the wire.
                        Next::Chunk([]) => continue,
                        Next::Chunk(c) => {
                            // The bytes borrow the body, untouched until the next `next`/`close`.
                            *chunk = WsBytes::from_slice(c);
                            return 1;
                        }
                        Next::Pending => return WS_PENDING,
                        Next::End => {
                            self.phase = Phase::Done;
                            return 0;
                        }
                        Next::Error => {
                            self.phase = Phase::Failed;
                            return WS_ERR_APP;
                        }
                    }
                }
            }
            BodyKind::Iter(it) => {
                // Empty items are skipped: an empty chunk would end a chunked body on the wire.
                match it.find(|c| !c.is_empty()) {
                    Some(c) => {
                        self.current = c;
                        *chunk = WsBytes::from_slice(&self.current);
                        return 1;
                    }
                    None => {
                        self.phase = Phase::Done;
                        return 0;
                    }
                }
            }
        };
        self.phase = Phase::Done;
        if bytes.is_empty() {
            return 0;
        }
        // The bytes are static or owned by `self.body`, which is not touched again until `close`.
        *chunk = WsBytes::from_slice(bytes);
        1
    }
}

/// Implementation details of [`crate::export_app!`]; not a stable API.
pub mod __private {
    use super::*;

    /// Builds the descriptor for app type `T`. `name` and `version` must end with exactly one NUL
    /// (the macro appends it); checked at compile time when used in a `static`.
    pub const fn descriptor<T: App>(
        name: &'static str,
        version: &'static str,
        flags: u32,
    ) -> WsApp {
        assert!(
            is_c_str(name),
            "app name must be NUL-terminated without inner NUL"
        );
        assert!(
            is_c_str(version),
            "app version must be NUL-terminated without inner NUL"
        );
        WsApp {
            magic: WS_APP_MAGIC,
            abi_major: WS_ABI_MAJOR,
            abi_minor: WS_ABI_MINOR,
            size: core::mem::size_of::<WsApp>() as u32,
            flags,
            name: name.as_ptr() as *const c_char,
            version: version.as_ptr() as *const c_char,
            init: Some(init::<T>),
            call: Some(call::<T>),
            shutdown: Some(shutdown::<T>),
        }
    }

    const fn is_c_str(s: &str) -> bool {
        let b = s.as_bytes();
        if b.is_empty() || b[b.len() - 1] != 0 {
            return false;
        }
        let mut i = 0;
        while i < b.len() - 1 {
            if b[i] == 0 {
                return false;
            }
            i += 1;
        }
        true
    }

    /// `WsApp::init`: runs `T::init`; leaks `Box<AppState<T>>` into `*state`.
    ///
    /// # Safety
    /// `init` must point to a valid `WsInit` (error buffer writable for `error_cap` bytes,
    /// `error_len` writable) and `state` must be writable, as the header specifies.
    pub unsafe extern "C" fn init<T: App>(init: *const WsInit, state: *mut *mut c_void) -> i32 {
        if init.is_null() || state.is_null() {
            return WS_ERR_INVALID;
        }
        // SAFETY: non-null, and valid for this call per the header.
        let raw = unsafe { &*init };
        boundary(
            WS_ERR_APP,
            || {
                // SAFETY: the header makes `host`/`log_ctx` process-lifetime.
                let ctx = unsafe { InitContext::from_raw(raw) };
                match T::init(&ctx) {
                    Ok(app) => {
                        let boxed = Box::new(AppState {
                            app,
                            logger: ctx.logger(),
                        });
                        // SAFETY: `state` is non-null and writable per the header.
                        unsafe { *state = Box::into_raw(boxed).cast() };
                        WS_OK
                    }
                    Err(msg) => {
                        // SAFETY: `raw` is the server's valid WsInit.
                        unsafe { raw.write_error(&msg) };
                        WS_ERR_APP
                    }
                }
            },
            // SAFETY: as above.
            |msg| unsafe { raw.write_error(&format!("init panicked: {msg}")) },
        )
    }

    /// `WsApp::call`: runs `T::call`, starts the response, fills `*body`.
    ///
    /// # Safety
    /// `state` must come from [`init::<T>`] and not be shut down; `request` and `body` must be
    /// valid as the header specifies (request valid until the body's `close` returns).
    pub unsafe extern "C" fn call<T: App>(
        state: *mut c_void,
        request: *const WsRequest,
        body: *mut WsBody,
    ) -> i32 {
        if request.is_null() {
            return WS_ERR_INVALID;
        }
        // SAFETY: non-null; valid for the whole call per the header.
        let raw = unsafe { &*request };
        // SAFETY: the header's contract for `raw`, which outlives this call.
        let mut req = unsafe { Request::from_raw(raw) };
        let logger = req.logger();
        if state.is_null() || body.is_null() {
            logger.error("app called without state or body (was init skipped?)");
            return WS_ERR_STATE;
        }
        boundary(
            WS_ERR_APP,
            || {
                // SAFETY: `state` came from `init::<T>` and is alive until `shutdown`; only shared
                // references are made, matching `T: Sync`.
                let app = unsafe { &(*state.cast::<AppState<T>>()).app };
                let mut response = app.call(&mut req);
                if let Some(taken) = response.take_over(&mut req) {
                    if let Err(err) = taken {
                        logger.error(&format!(
                            "the server refused the upgrade: {err} (is the request an upgrade, \
                             e.g. Request::is_websocket, and the server ABI 1.2?)"
                        ));
                        return err.code();
                    }
                } else if !response.is_started() {
                    if let Err(err) = response.send_head(&req) {
                        logger.error(&format!(
                            "response head rejected by the server: {err} (status {})",
                            response.status_code()
                        ));
                        return err.code();
                    }
                }
                let payload = response.into_body();
                let length_hint = payload.length_hint();
                let (ctx, next, close): (*mut c_void, _, _) =
                    if length_hint == 0 && !payload.has_on_close() {
                        // No chunks and nothing to release: no allocation, `next`/`close` NULL.
                        (core::ptr::null_mut(), None, None)
                    } else {
                        let boxed = BodyState::boxed(payload, logger, raw.host, raw.io);
                        (
                            Box::into_raw(boxed).cast(),
                            Some(body_next as _),
                            Some(body_close as _),
                        )
                    };
                // SAFETY: `body` is non-null and writable per the header; only the fields the app
                // fills are written (the server set `size`).
                unsafe {
                    (*body).ctx = ctx;
                    (*body).next = next;
                    (*body).close = close;
                    (*body).length_hint = length_hint;
                }
                WS_OK
            },
            |msg| logger.error(&format!("panic in app: {msg}")),
        )
    }

    /// `WsBody::next`.
    ///
    /// # Safety
    /// `ctx` must be a body ctx from [`call`] not yet closed, `chunk` writable; not called
    /// concurrently for the same ctx.
    pub unsafe extern "C" fn body_next(ctx: *mut c_void, chunk: *mut WsBytes) -> i32 {
        if ctx.is_null() || chunk.is_null() {
            return WS_ERR_INVALID;
        }
        let state = ctx.cast::<BodyState>();
        // SAFETY: `ctx` is a live BodyState (the caller's contract); Logger is Copy.
        let logger = unsafe { (*state).logger };
        boundary(
            WS_ERR_APP,
            // SAFETY: exclusive access to the live BodyState and a writable chunk (the contract).
            || unsafe { (*state).next_chunk(&mut *chunk) },
            |msg| {
                // SAFETY: the closure above has returned (by unwinding); the state is still live.
                unsafe { (*state).phase = Phase::Failed };
                logger.error(&format!("panic in app body: {msg}"));
            },
        )
    }

    /// `WsBody::close`: drops the body (running its `on_close` hooks).
    ///
    /// # Safety
    /// `ctx` must be a body ctx from [`call`], closed only this once.
    pub unsafe extern "C" fn body_close(ctx: *mut c_void) {
        if ctx.is_null() {
            return;
        }
        let state = ctx.cast::<BodyState>();
        // SAFETY: `ctx` is a live BodyState (the caller's contract).
        let logger = unsafe { (*state).logger };
        boundary(
            (),
            // SAFETY: the box was leaked by `call` and is reclaimed exactly once, here.
            || unsafe { Box::from_raw(state) }.release(),
            |msg| logger.error(&format!("panic in app body close: {msg}")),
        );
    }

    /// `WsApp::shutdown`: runs `T::shutdown`, then drops the state.
    ///
    /// # Safety
    /// `state` must come from [`init::<T>`]; no `call`, `next` or `close` runs or follows.
    pub unsafe extern "C" fn shutdown<T: App>(state: *mut c_void) {
        if state.is_null() {
            return;
        }
        let state = state.cast::<AppState<T>>();
        // SAFETY: `state` is the live AppState from init (the caller's contract).
        let logger = unsafe { (*state).logger };
        boundary(
            (),
            || {
                // SAFETY: reclaimed exactly once, after the last request (the header's contract).
                let boxed = unsafe { Box::from_raw(state) };
                boxed.app.shutdown();
            },
            |msg| logger.error(&format!("panic in app shutdown: {msg}")),
        );
    }
}

/// Exports an [`App`](crate::App) as a `#[no_mangle]` static `WsApp` descriptor.
///
/// ```
/// # use app_abi::{export_app, App, InitContext, Request, Response};
/// # struct Hello;
/// # struct Api;
/// # impl App for Hello {
/// #     fn init(_: &InitContext<'_>) -> Result<Self, String> { Ok(Hello) }
/// #     fn call(&self, _: &mut Request<'_>) -> Response { Response::text(200, "hello\n") }
/// # }
/// # impl App for Api {
/// #     fn init(_: &InitContext<'_>) -> Result<Self, String> { Ok(Api) }
/// #     fn call(&self, _: &mut Request<'_>) -> Response { Response::json(200, "{}") }
/// # }
/// export_app!(app, Hello, name = "hello", version = "1.0");
/// export_app!(api, Api, name = "api", version = env!("CARGO_PKG_VERSION"),
///             flags = app_abi::raw::WS_APP_SINGLE_THREADED);
/// # fn main() {
/// #     assert_eq!(api.flags, app_abi::raw::WS_APP_SINGLE_THREADED);
/// #     assert_eq!(app.flags, 0);
/// # }
/// ```
///
/// The server then loads it as `libNAME.so:app`. `name` and `version` must be string literals
/// (or macros expanding to them) without NUL bytes.
#[macro_export]
macro_rules! export_app {
    ($symbol:ident, $ty:ty, name = $name:expr, version = $version:expr $(, flags = $flags:expr)? $(,)?) => {
        #[no_mangle]
        #[allow(non_upper_case_globals)]
        pub static $symbol: $crate::raw::WsApp = $crate::__private::descriptor::<$ty>(
            concat!($name, "\0"),
            concat!($version, "\0"),
            0 $(| $flags)?,
        );
    };
}
