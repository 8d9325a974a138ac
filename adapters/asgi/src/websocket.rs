//! The ASGI `websocket` scope on the server's WebSockets (ABI 1.2 message mode: the server does
//! RFC 6455, the app sees text and bytes). Before the accept, the request is an HTTP request like
//! any other (`exchange.rs`): `websocket.accept` is handed to the deferred body's `next`, which
//! calls `websocket_accept` and ends the request; `websocket.close` is a 403 and
//! `websocket.http.response.*` an ordinary response. After it, the loop thread calls
//! `websocket_recv`/`websocket_send`/`websocket_close` on the handle (any thread may, and none
//! waits), and the server's `on_event` (a serving thread) only resumes the coroutine waiting for
//! the connection to be readable or writable, through `call_soon_threadsafe`.
//!
//! Locking is the exchange's: the loop thread holds the GIL and then takes [`WsShared`]'s lock;
//! `on_event` takes the lock, takes out the futures to resume and lets go of it before it takes
//! the GIL.

use crate::runtime::Runtime;
use app_abi::raw::{
    WsBytes, WsConnHandler, WsHost, WsMessage, WsPair, WS_ERR_TOO_LARGE, WS_EV_CLOSED,
    WS_EV_READABLE, WS_EV_WRITABLE, WS_MSG_BINARY, WS_MSG_TEXT, WS_OK, WS_PENDING,
};
use app_abi::Logger;
use pyo3::prelude::*;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

/// Close code for an app that raised after the accept (RFC 6455 "internal error").
pub(crate) const CLOSE_INTERNAL_ERROR: u16 = 1011;
/// Close code for an app that returned without closing.
pub(crate) const CLOSE_NORMAL: u16 = 1000;

#[derive(Default)]
struct WsState {
    /// The handle, from the accept until the app's (or the bridge's) `websocket_close`.
    handle: Option<Handle>,
    /// An `on_event` said readable (writable) since the last call that pended.
    readable: bool,
    writable: bool,
    /// `WS_EV_CLOSED` came.
    closed: bool,
    recv_waiter: Option<PyObject>,
    send_waiter: Option<PyObject>,
}

/// The host's WebSocket handle and the calls on it.
#[derive(Clone, Copy)]
struct Handle {
    ws: *mut c_void,
    host: &'static WsHost,
}

// SAFETY: the ABI lets any thread call websocket_recv/send/close on a handle until it is closed;
// the handle is only used under WsShared's lock, and taken out of it by the one close.
unsafe impl Send for Handle {}

/// What the loop and the server's `on_event` share for one WebSocket.
pub(crate) struct WsShared {
    state: Mutex<WsState>,
    runtime: Arc<Runtime>,
    logger: Logger,
}

/// One `websocket_recv` outcome, for `receive()`.
pub(crate) enum Received {
    Text(String),
    Bytes(Vec<u8>),
    /// The connection closed: the client's code and reason (1006 when none came).
    Closed(u16, String),
    /// Nothing now: the future was registered.
    Pending,
}

/// One `websocket_send` outcome, for `send()`.
pub(crate) enum Sent {
    Done,
    /// Not taken: wait for writable ([`WsShared::wait_writable`]), then send again.
    Wait,
    TooLarge,
    Gone,
}

impl WsShared {
    pub(crate) fn new(runtime: Arc<Runtime>, logger: Logger) -> WsShared {
        WsShared {
            state: Mutex::new(WsState::default()),
            runtime,
            logger,
        }
    }

    fn state(&self) -> MutexGuard<'_, WsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn accepted(&self) -> bool {
        self.state().handle.is_some()
    }

    /// The open handle, with `readable` (or `writable`) cleared before a call that may pend: an
    /// event after that call sets it again. Host calls are made without the lock (the server
    /// may hold its own while it runs `on_event`, which takes this one); only the loop thread
    /// calls or closes the handle, so it stays open meanwhile.
    fn before_call(&self, readable: bool) -> Option<Handle> {
        let mut st = self.state();
        if readable {
            st.readable = false;
        } else {
            st.writable = false;
        }
        st.handle
    }

    /// The next message, or `Pending` after registering `fut` (loop thread, GIL held).
    pub(crate) fn recv(&self, fut: PyObject) -> Received {
        let gone = || Received::Closed(1006, String::new());
        let Some(handle) = self.before_call(true) else {
            return gone();
        };
        let Some(recv) = handle.host.websocket_recv else {
            return gone();
        };
        let mut message = WsMessage::EMPTY;
        // SAFETY: the handle is open (only this thread closes it); `message` is a valid
        // out-pointer. The call never waits nor calls the app.
        let rc = unsafe { recv(handle.ws, &mut message) };
        // SAFETY: the message's bytes are the server's until the next recv or close on this
        // handle, which only this thread makes; they are copied before this returns.
        let data = unsafe { message.data.as_slice() };
        match rc {
            1 if message.kind == WS_MSG_TEXT => {
                Received::Text(String::from_utf8_lossy(data).into_owned())
            }
            1 if message.kind == WS_MSG_BINARY => Received::Bytes(data.to_vec()),
            WS_PENDING => {
                let mut st = self.state();
                if st.readable {
                    // Readable came during the call: resumed at once, the caller asks again.
                    st.readable = false;
                    drop(st);
                    self.runtime.resume(fut);
                } else {
                    st.recv_waiter = Some(fut);
                }
                Received::Pending
            }
            0 => Received::Closed(
                message.close_code,
                String::from_utf8_lossy(data).into_owned(),
            ),
            _ => gone(),
        }
    }

    /// Sends one message (loop thread, GIL held); on `Wait` the caller asks
    /// [`WsShared::wait_writable`], then sends again.
    pub(crate) fn send(&self, kind: u32, data: &[u8]) -> Sent {
        let Some(handle) = self.before_call(false) else {
            return Sent::Gone;
        };
        let Some(send) = handle.host.websocket_send else {
            return Sent::Gone;
        };
        // SAFETY: the handle is open (as in `recv`); `data` is valid for the call, which copies
        // what it queues and never waits.
        let rc = unsafe { send(handle.ws, kind, data.as_ptr(), data.len()) };
        match rc {
            WS_OK => Sent::Done,
            WS_PENDING => Sent::Wait,
            WS_ERR_TOO_LARGE => Sent::TooLarge,
            _ => Sent::Gone,
        }
    }

    /// After a send answered `Wait`: registers `fut` to be resumed once writable; false if it
    /// became writable (or closed) meanwhile: send again at once.
    pub(crate) fn wait_writable(&self, fut: PyObject) -> bool {
        let mut st = self.state();
        if st.writable || st.closed || st.handle.is_none() {
            return false;
        }
        st.send_waiter = Some(fut);
        true
    }

    /// Closes the handle with `code` and `reason` unless it is closed already (exactly once, as
    /// the ABI asks, also after the client closed). True if this call closed it.
    pub(crate) fn close(&self, code: u16, reason: &str) -> bool {
        let handle = self.state().handle.take();
        let Some(handle) = handle else { return false };
        if let Some(close) = handle.host.websocket_close {
            // At most 123 bytes of reason (RFC 6455 §5.5), cut at a character boundary.
            let mut end = reason.len().min(123);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            // SAFETY: the handle was open and is closed exactly once (taken out of the state
            // above); the reason is valid for the call. `release` follows on the server's side.
            unsafe {
                close(
                    handle.ws,
                    code,
                    WsBytes::from_slice(&reason.as_bytes()[..end]),
                )
            };
        }
        true
    }

    /// `on_event` (a serving thread): resumes whoever waits for what happened.
    fn on_event(&self, events: u32) {
        let (recv, send) = {
            let mut st = self.state();
            if events & WS_EV_CLOSED != 0 {
                st.closed = true;
            }
            let readable = events & (WS_EV_READABLE | WS_EV_CLOSED) != 0;
            let writable = events & (WS_EV_WRITABLE | WS_EV_CLOSED) != 0;
            st.readable |= readable;
            st.writable |= writable;
            (
                if readable {
                    st.recv_waiter.take()
                } else {
                    None
                },
                if writable {
                    st.send_waiter.take()
                } else {
                    None
                },
            )
        };
        for fut in recv.into_iter().chain(send) {
            self.runtime.resume(fut);
        }
    }
}

/// `websocket_accept` from the deferred body's `next` (the header: answered where
/// `start_response` is). `Ok` once the 101 is the server's to send; `Err` with the host's code.
///
/// # Safety
/// `host` and `io` are the running request's (this is its `next`, on this thread).
pub(crate) unsafe fn accept(
    host: &'static WsHost,
    io: *mut c_void,
    shared: &Arc<WsShared>,
    protocol: &[u8],
    headers: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), i32> {
    let Some(accept) = host.websocket_accept else {
        return Err(app_abi::raw::WS_ERR_STATE);
    };
    let pairs: Vec<WsPair> = headers
        .iter()
        .map(|(n, v)| WsPair {
            name: WsBytes::from_slice(n),
            value: WsBytes::from_slice(v),
        })
        .collect();
    let ctx = Arc::into_raw(Arc::clone(shared)) as *mut c_void;
    let handler = WsConnHandler {
        size: std::mem::size_of::<WsConnHandler>() as u32,
        reserved: 0,
        ctx,
        on_event: Some(on_event),
        release: Some(release),
    };
    let mut ws: *mut c_void = std::ptr::null_mut();
    // SAFETY: `io` is the running request's (the caller's contract); the protocol, pairs and
    // handler are valid for the call, which copies them; `ws` is a valid out-pointer.
    let rc = unsafe {
        accept(
            io,
            WsBytes::from_slice(protocol),
            pairs.as_ptr(),
            pairs.len(),
            0,
            &handler,
            &mut ws,
        )
    };
    if rc != WS_OK || ws.is_null() {
        // SAFETY: the server keeps the handler only on success: this is the Arc made above.
        drop(unsafe { Arc::from_raw(ctx as *const WsShared) });
        return Err(rc);
    }
    shared.state().handle = Some(Handle { ws, host });
    Ok(())
}

/// The handler's `on_event`: `ctx` is an `Arc<WsShared>` the server holds until `release`.
unsafe extern "C" fn on_event(ctx: *mut c_void, events: u32) {
    // SAFETY: `ctx` is the pointer `accept` made with Arc::into_raw; the server calls on_event
    // only before `release`, so the Arc is alive; it is borrowed, not taken.
    let shared = unsafe { &*(ctx as *const WsShared) };
    if catch_unwind(AssertUnwindSafe(|| shared.on_event(events))).is_err() {
        shared
            .logger
            .error("ASGI bridge: a WebSocket event could not be handed to the loop");
    }
}

/// The handler's `release`: the server's reference to `ctx` ends.
unsafe extern "C" fn release(ctx: *mut c_void) {
    // SAFETY: called once, after the close, with the pointer `accept` made with Arc::into_raw.
    let shared = unsafe { Arc::from_raw(ctx as *const WsShared) };
    // Dropping may free the state (and its futures, which needs the GIL: PyObject's drop defers
    // it when the GIL is not held); nothing here may unwind into the server.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(shared)));
}
