//! What [`crate::WebSocket`] and [`crate::Upgraded`] share (ABI 1.2): the handle an upgrade call
//! gives, behind one lock, closed exactly once; the app's handler behind `ws_conn_handler.ctx`;
//! and the `on_event`/`release` trampolines, each inside the crate's panic boundary.
//!
//! Who keeps a connection open: the app's clones of the handle, *and* the server's registration
//! of the handler — the handler context holds one clone until the connection ends (the server's
//! `WS_EV_CLOSED`). So an echo that keeps no handle anywhere stays open while the client talks,
//! and a connection the client left is released once the app's last clone is dropped. The app
//! ends a live connection with `close`.

use super::error::AbiError;
use super::ffi::boundary;
use super::log::Logger;
use crate::raw::{
    WsConnHandler, WsHost, WS_EV_CLOSED, WS_EV_GOING_AWAY, WS_EV_READABLE, WS_EV_WRITABLE,
};
use core::ffi::c_void;
use core::ptr::NonNull;
use std::sync::{Mutex, MutexGuard};

/// The readiness the server reports to a handler (`WS_EV_*` bits); edges, see the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Events(u32);

impl Events {
    /// Wraps `WS_EV_*` bits.
    pub const fn from_bits(bits: u32) -> Events {
        Events(bits)
    }

    /// The `WS_EV_*` bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// A read or `recv` that answered "pending" may now make progress.
    pub const fn readable(self) -> bool {
        self.0 & WS_EV_READABLE != 0
    }

    /// A write or `send` that answered "would block" may now be taken.
    pub const fn writable(self) -> bool {
        self.0 & WS_EV_WRITABLE != 0
    }

    /// The connection ended (client, error, timeout, drain): reads report the end.
    pub const fn closed(self) -> bool {
        self.0 & WS_EV_CLOSED != 0
    }

    /// The server drains (stop, hot swap): it closes the connection after `--graceful-timeout`.
    pub const fn going_away(self) -> bool {
        self.0 & WS_EV_GOING_AWAY != 0
    }
}

/// How a handle is closed.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Stream,
    WebSocket,
}

/// One upgraded connection's handle: `None` once closed, so no call reaches the host with a
/// handle it has released.
pub(crate) struct Handle {
    /// The host vtable: process-lifetime (header).
    pub(crate) host: &'static WsHost,
    raw: Mutex<Option<NonNull<c_void>>>,
    kind: Kind,
}

// SAFETY: the header lets every connection call be made from any thread at any time until the
// handle is closed; the lock keeps a call from overlapping the close (and two `recv`s from
// overlapping, whose message bytes live until the next call on the handle).
unsafe impl Send for Handle {}
// SAFETY: as above; shared access only goes through the lock.
unsafe impl Sync for Handle {}

impl Handle {
    fn lock(&self) -> MutexGuard<'_, Option<NonNull<c_void>>> {
        self.raw.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` with the live handle; `Err(ClientGone)` once closed. The lock is held during `f`
    /// (a host call that never waits).
    pub(crate) fn with<R>(&self, f: impl FnOnce(NonNull<c_void>) -> R) -> Result<R, AbiError> {
        let raw = self.lock();
        match *raw {
            Some(handle) => Ok(f(handle)),
            None => Err(AbiError::ClientGone),
        }
    }

    /// Closes the handle unless it is already; `code` and `reason` are a WebSocket's.
    pub(crate) fn close(&self, code: u16, reason: &[u8]) {
        let Some(raw) = self.lock().take() else {
            return;
        };
        match self.kind {
            Kind::Stream => {
                if let Some(close) = self.host.stream_close {
                    // SAFETY: `raw` came from `upgrade` and is closed exactly once (taken out
                    // of the lock above); the header allows this from any thread.
                    unsafe { close(raw.as_ptr()) }
                }
            }
            Kind::WebSocket => {
                if let Some(close) = self.host.websocket_close {
                    // SAFETY: as above, for `websocket_accept`'s handle; `reason` is valid
                    // during the call.
                    unsafe { close(raw.as_ptr(), code, crate::raw::WsBytes::from_slice(reason)) }
                }
            }
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().is_none()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // The last clone: a live connection ends normally.
        self.close(1000, b"");
    }
}

/// What sits behind `ws_conn_handler.ctx`: the app's handler and the registration's own clone of
/// the connection (`C`: a `WebSocket` or `Upgraded`), set right after the upgrade call returned
/// (the header: no `on_event` before that).
pub(crate) struct HandlerCtx<C, H> {
    pub(crate) conn: Option<C>,
    pub(crate) handler: H,
    pub(crate) logger: Logger,
}

/// What a connection's handler does with one event: the app's `WebSocketHandler` or
/// `StreamHandler`, given the connection `C` it serves.
pub(crate) trait EventTarget<C>: Send + 'static {
    fn dispatch(&mut self, conn: &C, events: Events);
}

/// Calls `upgrade` (the host's `upgrade` or `websocket_accept`, bound to its other arguments)
/// with a `ws_conn_handler` for `handler`, and makes the connection (`wrap`) from the handle the
/// server gives.
pub(crate) fn take_over<C, H>(
    host: &WsHost,
    kind: Kind,
    handler: H,
    logger: Logger,
    wrap: fn(Handle) -> C,
    upgrade: impl FnOnce(&WsConnHandler, &mut *mut c_void) -> i32,
) -> Result<C, AbiError>
where
    C: Clone + Send + 'static,
    H: EventTarget<C>,
{
    // SAFETY: the header makes the vtable live as long as the process.
    let host: &'static WsHost = unsafe { &*(host as *const WsHost) };
    let ctx = Box::into_raw(Box::new(HandlerCtx::<C, H> {
        conn: None,
        handler,
        logger,
    }));
    let raw_handler = WsConnHandler {
        size: core::mem::size_of::<WsConnHandler>() as u32,
        reserved: 0,
        ctx: ctx.cast(),
        on_event: Some(on_event::<C, H>),
        release: Some(release::<C, H>),
    };
    let mut raw: *mut c_void = core::ptr::null_mut();
    let rc = upgrade(&raw_handler, &mut raw);
    let refused = |err| {
        // SAFETY: the server did not take the handler (the call failed), so `ctx` is still ours
        // alone, and reclaimed once, here.
        drop(unsafe { Box::from_raw(ctx) });
        Err(err)
    };
    if let Err(err) = AbiError::check(rc) {
        return refused(err);
    }
    let Some(raw) = NonNull::new(raw) else {
        return refused(AbiError::State);
    };
    let conn = wrap(Handle {
        host,
        raw: Mutex::new(Some(raw)),
        kind,
    });
    // SAFETY: no `on_event` or `release` runs before the upgrade call returned (header), and it
    // has; this thread is the only one that touches `ctx` now.
    unsafe { (*ctx).conn = Some(conn.clone()) };
    Ok(conn)
}

/// `ws_conn_handler.on_event`: the handler's call, then, once the connection ended, the
/// registration's clone is dropped (closing the handle if the app holds none).
unsafe extern "C" fn on_event<C, H>(ctx: *mut c_void, events: u32)
where
    C: Clone + Send + 'static,
    H: EventTarget<C>,
{
    if ctx.is_null() {
        return;
    }
    let ctx = ctx.cast::<HandlerCtx<C, H>>();
    // SAFETY: `ctx` is live until `release`, which never overlaps an `on_event` (header).
    let logger = unsafe { (*ctx).logger };
    let events = Events::from_bits(events);
    boundary(
        (),
        || {
            // SAFETY: one `on_event` at a time per connection and none during `release` (the
            // header), so this is the only reference to the context now.
            let ctx = unsafe { &mut *ctx };
            let Some(conn) = ctx.conn.clone() else {
                return;
            };
            ctx.handler.dispatch(&conn, events);
            if events.closed() {
                ctx.conn = None;
            }
        },
        |msg| logger.error(&format!("panic in app connection handler: {msg}")),
    );
}

/// `ws_conn_handler.release`: frees the context (the handler and the registration's clone).
unsafe extern "C" fn release<C, H>(ctx: *mut c_void)
where
    C: Send + 'static,
    H: Send + 'static,
{
    if ctx.is_null() {
        return;
    }
    let ctx = ctx.cast::<HandlerCtx<C, H>>();
    // SAFETY: `ctx` is the live context from `take_over` (the header: `release` comes once, when
    // no `on_event` runs); Logger is Copy.
    let logger = unsafe { (*ctx).logger };
    boundary(
        (),
        // SAFETY: reclaimed exactly once, here.
        || drop(unsafe { Box::from_raw(ctx) }),
        |msg| logger.error(&format!("panic in app connection release: {msg}")),
    );
}
