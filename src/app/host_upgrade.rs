//! The ABI 1.2 host calls: taking a connection (`upgrade`, `websocket_accept`, answered where
//! `start_response` is, through the request's exchange) and using it (`stream_*` and
//! `websocket_*`, answered from any thread at any time, by the connection itself through
//! [`TakenConnection`], which the server implements: `server/upgraded/`, `server/ws/`).
//!
//! A connection handle is a [`Handle`]: the app owns that one reference until its `*_close`,
//! which takes it back. Each callback is a panic boundary, as in `host.rs`, and every pointer
//! the app passes is only read during the call.

use std::ffi::c_void;

use app_abi::raw::{
    WsBytes, WsConnHandler, WsMessage, WsOnEventFn, WsPair, WsReleaseFn, WS_ERR_APP,
    WS_ERR_CLIENT_GONE, WS_ERR_INVALID, WS_ERR_STATE, WS_OK, WS_PENDING,
};

use super::exchange::Exchange;
use super::host::boundary;
use super::upgraded::{Handle, Step, TakenConnection};

/// The app's side of an upgraded connection, copied from its `ws_conn_handler`.
#[derive(Clone, Copy)]
pub(crate) struct ConnHandler {
    ctx: *mut c_void,
    on_event: WsOnEventFn,
    release: Option<WsReleaseFn>,
}

// SAFETY: the ABI lets the server call `on_event` and `release` on any serving thread (one at a
// time per connection, which `Upgraded` enforces); `ctx` is only passed back to them.
unsafe impl Send for ConnHandler {}
// SAFETY: as above; the handler itself is immutable.
unsafe impl Sync for ConnHandler {}

impl ConnHandler {
    /// The app's handler, if it is one: a size that covers `on_event`, and `on_event` set.
    ///
    /// # Safety
    /// `handler` must be null or readable for its `size` as the ABI requires.
    unsafe fn from_raw(handler: *const WsConnHandler) -> Option<ConnHandler> {
        // SAFETY: per this function's contract.
        let raw = unsafe { handler.as_ref() }?;
        let needed = std::mem::offset_of!(WsConnHandler, release);
        if (raw.size as usize) < needed {
            return None;
        }
        let release = if raw.size as usize >= std::mem::size_of::<WsConnHandler>() {
            raw.release
        } else {
            None
        };
        Some(ConnHandler {
            ctx: raw.ctx,
            on_event: raw.on_event?,
            release,
        })
    }

    /// The app's `on_event(ctx, events)`; a serving thread's call, one at a time.
    pub(crate) fn on_event(&self, events: u32) {
        // SAFETY: the app gave this function and context for exactly this call (ABI 1.2); the
        // connection calls it on one serving thread at a time and never after `release`.
        unsafe { (self.on_event)(self.ctx, events) }
    }

    /// The app's `release(ctx)`, once.
    pub(crate) fn release(&self) {
        if let Some(release) = self.release {
            // SAFETY: called once, after the app's close, when no `on_event` runs (`Upgraded`).
            unsafe { release(self.ctx) }
        }
    }
}

/// The app's header pairs as slices.
///
/// # Safety
/// `headers[..n]` and every slice in them must be readable for `'h`.
unsafe fn pairs<'h>(headers: *const WsPair, n: usize) -> Vec<(&'h [u8], &'h [u8])> {
    if n == 0 || headers.is_null() {
        return Vec::new();
    }
    // SAFETY: per this function's contract.
    let headers = unsafe { std::slice::from_raw_parts(headers, n) };
    headers
        .iter()
        // SAFETY: per this function's contract, each pair's slices are readable.
        .map(|p| unsafe { (p.name.as_slice(), p.value.as_slice()) })
        .collect()
}

/// The connection behind a handle.
///
/// # Safety
/// `handle` must be a handle from `upgrade`/`websocket_accept` not yet closed.
unsafe fn conn<'a>(handle: *mut c_void) -> &'a dyn TakenConnection {
    // SAFETY: the handle is a live `Handle` the app owns (one reference) until close.
    unsafe { Handle::get(handle) }
}

/// Hands the app its handle, or says why not.
fn give(taken: Result<*mut c_void, i32>, out: *mut *mut c_void) -> i32 {
    match taken {
        Ok(handle) => {
            // SAFETY: the caller checked `out` is not null; the app passes a writable pointer.
            unsafe { *out = handle };
            WS_OK
        }
        Err(code) => code,
    }
}

/// ABI 1.2 `upgrade`.
///
/// # Safety
/// `io` as for `read`; `headers[..n_headers]` readable; `handler` readable; `stream` writable.
pub(super) unsafe extern "C" fn host_upgrade(
    io: *mut c_void,
    headers: *const WsPair,
    n_headers: usize,
    flags: u32,
    handler: *const WsConnHandler,
    stream: *mut *mut c_void,
) -> i32 {
    boundary("upgrade", WS_ERR_APP, || {
        if io.is_null() || stream.is_null() || (headers.is_null() && n_headers > 0) || flags != 0 {
            return WS_ERR_INVALID;
        }
        // SAFETY: the app's pointers, per the header's contract.
        let (Some(handler), headers) = (unsafe { ConnHandler::from_raw(handler) }, unsafe {
            pairs(headers, n_headers)
        }) else {
            log::error!(target: "app", "upgrade without a ws_conn_handler with on_event");
            return WS_ERR_INVALID;
        };
        let taken = Exchange::with_current(io, "upgrade", |exchange| {
            exchange.upgrade(&headers, handler)
        });
        give(taken.unwrap_or(Err(WS_ERR_STATE)), stream)
    })
}

/// ABI 1.2 `stream_read`.
///
/// # Safety
/// `stream` a live handle; `buf[..cap]` and `n_read` writable.
pub(super) unsafe extern "C" fn host_stream_read(
    stream: *mut c_void,
    buf: *mut u8,
    cap: usize,
    n_read: *mut usize,
) -> i32 {
    boundary("stream_read", WS_ERR_APP, || {
        if stream.is_null() || n_read.is_null() || (buf.is_null() && cap > 0) {
            return WS_ERR_INVALID;
        }
        // SAFETY: per the header's contract: a live handle, writable buffer and count.
        let (conn, out, n_read) = unsafe {
            *n_read = 0;
            let out = if cap == 0 {
                &mut [][..]
            } else {
                std::slice::from_raw_parts_mut(buf, cap)
            };
            (conn(stream), out, &mut *n_read)
        };
        match conn.read(out) {
            Step::Done(n) => {
                *n_read = n;
                WS_OK
            }
            Step::Pending => WS_PENDING,
            Step::Gone => WS_OK,
            Step::Refused => WS_ERR_STATE,
        }
    })
}

/// ABI 1.2 `stream_write`.
///
/// # Safety
/// `stream` a live handle; `buf[..len]` readable; `n_written` writable.
pub(super) unsafe extern "C" fn host_stream_write(
    stream: *mut c_void,
    buf: *const u8,
    len: usize,
    n_written: *mut usize,
) -> i32 {
    boundary("stream_write", WS_ERR_APP, || {
        if stream.is_null() || n_written.is_null() || (buf.is_null() && len > 0) {
            return WS_ERR_INVALID;
        }
        // SAFETY: per the header's contract.
        let (conn, data, n_written) = unsafe {
            *n_written = 0;
            (
                conn(stream),
                WsBytes { ptr: buf, len }.as_slice(),
                &mut *n_written,
            )
        };
        match conn.write(data) {
            Step::Done(n) => {
                *n_written = n;
                WS_OK
            }
            Step::Pending => WS_PENDING,
            Step::Gone => WS_ERR_CLIENT_GONE,
            Step::Refused => WS_ERR_STATE,
        }
    })
}

/// ABI 1.2 `stream_close`: takes the app's reference back.
///
/// # Safety
/// `stream` a live handle, closed only here and once.
pub(super) unsafe extern "C" fn host_stream_close(stream: *mut c_void) {
    boundary("stream_close", (), || {
        if stream.is_null() {
            return;
        }
        // SAFETY: the app's one reference, given back exactly once.
        let conn = unsafe { Handle::take(stream) };
        conn.close();
    })
}

/// ABI 1.2 `websocket_accept`.
///
/// # Safety
/// As `host_upgrade`; `protocol` readable.
pub(super) unsafe extern "C" fn host_websocket_accept(
    io: *mut c_void,
    protocol: WsBytes,
    headers: *const WsPair,
    n_headers: usize,
    flags: u32,
    handler: *const WsConnHandler,
    websocket: *mut *mut c_void,
) -> i32 {
    boundary("websocket_accept", WS_ERR_APP, || {
        if io.is_null() || websocket.is_null() || (headers.is_null() && n_headers > 0) || flags != 0
        {
            return WS_ERR_INVALID;
        }
        // SAFETY: the app's pointers, per the header's contract.
        let (Some(handler), headers, protocol) = (
            unsafe { ConnHandler::from_raw(handler) },
            unsafe { pairs(headers, n_headers) },
            unsafe { protocol.as_slice() },
        ) else {
            log::error!(target: "app", "websocket_accept without a ws_conn_handler with on_event");
            return WS_ERR_INVALID;
        };
        let taken = Exchange::with_current(io, "websocket_accept", |exchange| {
            exchange.websocket_accept(protocol, &headers, handler)
        });
        give(taken.unwrap_or(Err(WS_ERR_STATE)), websocket)
    })
}

/// ABI 1.2 `websocket_recv`.
///
/// # Safety
/// `websocket` a live handle; `message` writable.
pub(super) unsafe extern "C" fn host_websocket_recv(
    websocket: *mut c_void,
    message: *mut WsMessage,
) -> i32 {
    boundary("websocket_recv", WS_ERR_APP, || {
        if websocket.is_null() || message.is_null() {
            return WS_ERR_INVALID;
        }
        // SAFETY: per the header's contract.
        let (conn, message) = unsafe { (conn(websocket), &mut *message) };
        *message = WsMessage::EMPTY;
        conn.ws_recv(message)
    })
}

/// ABI 1.2 `websocket_send`.
///
/// # Safety
/// `websocket` a live handle; `data[..len]` readable.
pub(super) unsafe extern "C" fn host_websocket_send(
    websocket: *mut c_void,
    kind: u32,
    data: *const u8,
    len: usize,
) -> i32 {
    boundary("websocket_send", WS_ERR_APP, || {
        if websocket.is_null() || (data.is_null() && len > 0) {
            return WS_ERR_INVALID;
        }
        // SAFETY: per the header's contract.
        let (conn, data) = unsafe { (conn(websocket), WsBytes { ptr: data, len }.as_slice()) };
        conn.ws_send(kind, data)
    })
}

/// ABI 1.2 `websocket_close`: takes the app's reference back.
///
/// # Safety
/// `websocket` a live handle, closed only here and once; `reason` readable.
pub(super) unsafe extern "C" fn host_websocket_close(
    websocket: *mut c_void,
    code: u16,
    reason: WsBytes,
) {
    boundary("websocket_close", (), || {
        if websocket.is_null() {
            return;
        }
        // SAFETY: the app's one reference, given back exactly once; `reason` readable now.
        let (conn, reason) = unsafe { (Handle::take(websocket), reason.as_slice()) };
        conn.ws_close(code, reason);
    })
}
