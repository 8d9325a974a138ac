//! The host vtable: the callbacks every request (and `init`) receives.
//!
//! Each callback is a panic boundary: a bug on our side must not unwind into C. The `io` pointer
//! is a request's identity; a request callback reaches that request's [`Exchange`] only on the
//! thread that runs the request's `call`, `next` or `close` (`Exchange::with_current`), as a shared
//! `&Exchange`: the exchange decides, from the phase the request is in, whether the call is
//! answered (see `exchange.rs`), so a callback made from inside the app's `next` or `close`
//! aliases nothing. The ABI 1.1 wakers are the exception by design: `waker_wake` and
//! `waker_free` are answered from any thread (`waker.rs`).

use std::ffi::c_void;
use std::os::fd::BorrowedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};

use app_abi::raw::{
    WsBytes, WsHost, WsPair, WsRequestParts, WS_ERR_APP, WS_ERR_INVALID, WS_ERR_STATE,
    WS_LOG_DEBUG, WS_LOG_ERROR, WS_LOG_INFO, WS_LOG_WARN, WS_OK, WS_PENDING, WS_RESPONSE_CLOSE,
    WS_RESPONSE_REPLACE,
};

use super::exchange::Exchange;
use super::host_upgrade;
use super::waker;

/// What `log_ctx` points to: which app a message comes from. Leaked: lives as long as the process,
/// as the ABI promises.
pub(crate) struct AppLogTag {
    pub(crate) name: String,
}

/// The one host vtable. Static, so every pointer to it stays valid for the process's life.
pub(crate) static HOST: WsHost = WsHost {
    size: std::mem::size_of::<WsHost>() as u32,
    reserved: 0,
    read: Some(host_read),
    start_response: Some(host_start_response),
    write: Some(host_write),
    log: Some(host_log),
    try_read: Some(host_try_read),
    waker_new: Some(host_waker_new),
    waker_wake: Some(host_waker_wake),
    waker_free: Some(host_waker_free),
    upgrade: Some(host_upgrade::host_upgrade),
    stream_read: Some(host_upgrade::host_stream_read),
    stream_write: Some(host_upgrade::host_stream_write),
    stream_close: Some(host_upgrade::host_stream_close),
    websocket_accept: Some(host_upgrade::host_websocket_accept),
    websocket_recv: Some(host_upgrade::host_websocket_recv),
    websocket_send: Some(host_upgrade::host_websocket_send),
    websocket_close: Some(host_upgrade::host_websocket_close),
    send_file: Some(host_send_file),
    request_trailers: Some(host_request_trailers),
    set_trailers: Some(host_set_trailers),
    waker_wake_here: Some(host_waker_wake_here),
    request_parts: Some(host_request_parts),
};

/// Runs `f`, turning a panic into `on_panic` (and a log line) so nothing unwinds into the app.
pub(super) fn boundary<T>(what: &str, on_panic: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => value,
        Err(_) => {
            log::error!("internal error: panic in host callback `{what}`");
            on_panic
        }
    }
}

/// # Safety
/// `io` must be the `ws_request.io` of a request in progress; `buf` must be writable for `cap`
/// bytes and `n_read` writable, as the ABI requires of the app.
unsafe extern "C" fn host_read(
    io: *mut c_void,
    buf: *mut u8,
    cap: usize,
    n_read: *mut usize,
) -> i32 {
    boundary("read", WS_ERR_APP, || {
        if io.is_null() || n_read.is_null() || (buf.is_null() && cap > 0) {
            return WS_ERR_INVALID;
        }
        // SAFETY: the app guarantees buf/cap and n_read per the header's contract.
        let (out, n_read) = unsafe { read_args(buf, cap, n_read) };
        let read = Exchange::with_current(io, "read", |exchange| exchange.read_body(out));
        match read.unwrap_or(Err(WS_ERR_STATE)) {
            Ok(n) => {
                *n_read = n;
                0
            }
            Err(code) => code,
        }
    })
}

/// The buffer and the count of `read` / `try_read`, the count zeroed.
///
/// # Safety
/// `buf` must be writable for `cap` bytes (or `cap` 0) and `n_read` writable, for `'b`.
unsafe fn read_args<'b>(
    buf: *mut u8,
    cap: usize,
    n_read: *mut usize,
) -> (&'b mut [u8], &'b mut usize) {
    // SAFETY: per this function's contract.
    let (out, n_read) = unsafe {
        (
            if cap == 0 {
                &mut [][..]
            } else {
                std::slice::from_raw_parts_mut(buf, cap)
            },
            &mut *n_read,
        )
    };
    *n_read = 0;
    (out, n_read)
}

/// ABI 1.1 `try_read`.
///
/// # Safety
/// As for `host_read`.
unsafe extern "C" fn host_try_read(
    io: *mut c_void,
    buf: *mut u8,
    cap: usize,
    n_read: *mut usize,
) -> i32 {
    boundary("try_read", WS_ERR_APP, || {
        if io.is_null() || n_read.is_null() || (buf.is_null() && cap > 0) {
            return WS_ERR_INVALID;
        }
        // SAFETY: the app guarantees buf/cap and n_read per the header's contract.
        let (out, n_read) = unsafe { read_args(buf, cap, n_read) };
        let read = Exchange::with_current(io, "try_read", |exchange| exchange.try_read_body(out));
        match read.unwrap_or(Err(WS_ERR_STATE)) {
            Ok(Some(n)) => {
                *n_read = n;
                0
            }
            Ok(None) => WS_PENDING,
            Err(code) => code,
        }
    })
}

/// ABI 1.1 `waker_new`: null when the request cannot be resumed (or not from here).
unsafe extern "C" fn host_waker_new(io: *mut c_void) -> *mut c_void {
    boundary("waker_new", std::ptr::null_mut(), || {
        Exchange::with_current(io, "waker_new", |exchange| exchange.new_waker())
            .flatten()
            .map_or(std::ptr::null_mut(), waker::into_handle)
    })
}

/// ABI 1.1 `waker_wake`: any thread.
///
/// # Safety
/// `handle` must be a waker from `waker_new` not yet freed (null is ignored).
unsafe extern "C" fn host_waker_wake(handle: *mut c_void) {
    boundary("waker_wake", (), || {
        if !handle.is_null() {
            // SAFETY: per the ABI, a live waker from waker_new.
            unsafe { waker::wake(handle) }
        }
    })
}

/// ABI 1.3 `waker_wake_here`: `waker_wake`, answered on this thread once it is done with the
/// request at hand when it is a serving thread (the header's promise).
///
/// # Safety
/// `handle` must be a live waker from `waker_new` (null is ignored).
unsafe extern "C" fn host_waker_wake_here(handle: *mut c_void) {
    boundary("waker_wake_here", (), || {
        if !handle.is_null() {
            // SAFETY: per the ABI, a live waker from waker_new.
            unsafe { waker::wake_here(handle) }
        }
    })
}

/// ABI 1.1 `waker_free`: any thread, exactly once.
///
/// # Safety
/// `handle` must be a waker from `waker_new`, freed only here and only once (null is ignored).
unsafe extern "C" fn host_waker_free(handle: *mut c_void) {
    boundary("waker_free", (), || {
        if !handle.is_null() {
            // SAFETY: per the ABI, a live waker from waker_new, released exactly once.
            unsafe { waker::free(handle) }
        }
    })
}

/// ABI 1.2 `send_file`.
///
/// # Safety
/// `io` as for `host_read`; `fd` must stay open during the call (the server duplicates it).
unsafe extern "C" fn host_send_file(
    io: *mut c_void,
    fd: i32,
    offset: u64,
    length: u64,
    flags: u32,
) -> i32 {
    boundary("send_file", WS_ERR_APP, || {
        if io.is_null() || fd < 0 {
            return WS_ERR_INVALID;
        }
        // SAFETY: the app keeps `fd` open for the call (the ABI's rule); it is only duplicated.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        Exchange::with_current(io, "send_file", |exchange| {
            exchange.send_file(fd, (offset, length), flags)
        })
        .unwrap_or(WS_ERR_STATE)
    })
}

/// ABI 1.3 `request_trailers`.
///
/// # Safety
/// `io` as for `host_read`; `fields` and `n_fields` must be writable, as the ABI requires.
unsafe extern "C" fn host_request_trailers(
    io: *mut c_void,
    fields: *mut *const WsPair,
    n_fields: *mut usize,
) -> i32 {
    boundary("request_trailers", WS_ERR_APP, || {
        if io.is_null() || fields.is_null() || n_fields.is_null() {
            return WS_ERR_INVALID;
        }
        // SAFETY: the app guarantees both out-pointers are writable for the call.
        let (fields, n_fields) = unsafe { (&mut *fields, &mut *n_fields) };
        *fields = std::ptr::null();
        *n_fields = 0;
        let got = Exchange::with_current(io, "request_trailers", |exchange| {
            exchange.request_trailers()
        });
        match got.unwrap_or(Err(WS_ERR_STATE)) {
            Ok((pairs, n)) => {
                *fields = pairs;
                *n_fields = n;
                WS_OK
            }
            Err(code) => code,
        }
    })
}

/// ABI 1.3 `request_parts`.
///
/// # Safety
/// `io` as for `host_read`; `parts` must be writable, as the ABI requires.
unsafe extern "C" fn host_request_parts(io: *mut c_void, parts: *mut *const WsRequestParts) -> i32 {
    boundary("request_parts", WS_ERR_APP, || {
        if io.is_null() || parts.is_null() {
            return WS_ERR_INVALID;
        }
        // SAFETY: the app guarantees the out-pointer is writable for the call.
        let parts = unsafe { &mut *parts };
        *parts = std::ptr::null();
        let got = Exchange::with_current(io, "request_parts", |exchange| exchange.request_parts());
        match got.unwrap_or(Err(WS_ERR_STATE)) {
            Ok(kept) => {
                *parts = kept;
                WS_OK
            }
            Err(code) => code,
        }
    })
}

/// ABI 1.3 `set_trailers`.
///
/// # Safety
/// `io` as for `host_read`; `fields[..n_fields]` and every slice in them must be readable for
/// the call.
unsafe extern "C" fn host_set_trailers(
    io: *mut c_void,
    fields: *const WsPair,
    n_fields: usize,
    flags: u32,
) -> i32 {
    boundary("set_trailers", WS_ERR_APP, || {
        if io.is_null() || (fields.is_null() && n_fields > 0) || flags != 0 {
            return WS_ERR_INVALID;
        }
        // SAFETY: the app guarantees the array is readable during this call; it is copied.
        let fields = unsafe {
            if n_fields == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(fields, n_fields)
            }
        };
        // SAFETY: every pair's slices are readable for this call (see above).
        let pairs = fields
            .iter()
            .map(|p| unsafe { (p.name.as_slice(), p.value.as_slice()) });
        Exchange::with_current(io, "set_trailers", |exchange| exchange.set_trailers(pairs))
            .unwrap_or(WS_ERR_STATE)
    })
}

/// # Safety
/// `io` as for `host_read`; `reason` and `headers[..n_headers]` must be readable for the call.
unsafe extern "C" fn host_start_response(
    io: *mut c_void,
    status: u16,
    reason: WsBytes,
    headers: *const WsPair,
    n_headers: usize,
    flags: u32,
) -> i32 {
    boundary("start_response", WS_ERR_APP, || {
        if io.is_null() || (headers.is_null() && n_headers > 0) {
            return WS_ERR_INVALID;
        }
        // SAFETY: the app guarantees that reason and the header array (and every slice in it)
        // are readable during this call, and we copy them.
        let (reason, headers) = unsafe {
            (
                reason.as_slice(),
                if n_headers == 0 {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(headers, n_headers)
                },
            )
        };
        let replace = flags & WS_RESPONSE_REPLACE != 0;
        let close = flags & WS_RESPONSE_CLOSE != 0;
        // SAFETY: every pair's slices are readable for this call (see above).
        let pairs = headers
            .iter()
            .map(|p| unsafe { (p.name.as_slice(), p.value.as_slice()) });
        Exchange::with_current(io, "start_response", |exchange| {
            exchange.start_response(status, reason, pairs, replace, close)
        })
        .unwrap_or(WS_ERR_STATE)
    })
}

/// # Safety
/// `io` as for `host_read`; `buf[..len]` must be readable for the call.
unsafe extern "C" fn host_write(io: *mut c_void, buf: *const u8, len: usize) -> i32 {
    boundary("write", WS_ERR_APP, || {
        if io.is_null() || (buf.is_null() && len > 0) {
            return WS_ERR_INVALID;
        }
        // SAFETY: the app guarantees buf[..len] is readable.
        let data = unsafe { WsBytes { ptr: buf, len }.as_slice() };
        Exchange::with_current(io, "write", |exchange| exchange.write(data)).unwrap_or(WS_ERR_STATE)
    })
}

/// # Safety
/// `log_ctx` must be null or a `log_ctx` the server handed out (an `AppLogTag`); `msg[..len]`
/// must be readable for the call.
unsafe extern "C" fn host_log(log_ctx: *const c_void, level: u32, msg: *const u8, len: usize) {
    boundary("log", (), || {
        // SAFETY: the server only hands out log_ctx values that point to leaked AppLogTags.
        let app =
            unsafe { (log_ctx as *const AppLogTag).as_ref() }.map_or("?", |tag| tag.name.as_str());
        // SAFETY: the app guarantees msg[..len] is readable during the call.
        let text = unsafe { WsBytes { ptr: msg, len }.as_slice() };
        let text = String::from_utf8_lossy(text);
        let level = match level {
            WS_LOG_ERROR => log::Level::Error,
            WS_LOG_WARN => log::Level::Warn,
            WS_LOG_INFO => log::Level::Info,
            WS_LOG_DEBUG => log::Level::Debug,
            _ => log::Level::Trace,
        };
        log::log!(target: "app", level, "[{app}] {}", text.trim_end());
    })
}
