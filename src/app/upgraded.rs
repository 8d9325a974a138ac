//! What the app's upgraded-connection host calls (`host_upgrade.rs`) and the server's upgraded
//! connections (`crate::server::upgraded`, which re-exports these) say to each other: how the
//! app sees the connection, what one non-blocking step gave, and the calls a taken connection
//! answers ([`TakenConnection`], which the server implements, so this layer needs nothing of it).

use std::ffi::c_void;
use std::sync::Arc;

use app_abi::raw::WsMessage;

/// What one non-blocking step gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step<T> {
    Done(T),
    /// Nothing now: an event follows.
    Pending,
    /// The connection is closed (or failed).
    Gone,
    /// Not a call for this kind of handle (a byte-stream call on a WebSocket's).
    Refused,
}

/// How the app sees the connection.
pub(crate) enum Mode {
    /// `upgrade`: bytes. `websocket` when the 101 said `Upgrade: websocket` (an app with its own
    /// WebSocket stack, axum): the drain still says goodbye with a close frame.
    Raw { websocket: bool },
    /// `websocket_accept`: RFC 6455 messages, framed by the server.
    WebSocket,
}

/// The server's side of a connection an app took (ABI 1.2): what the `stream_*` and
/// `websocket_*` host calls do with a handle. Each call takes one non-blocking step at most and
/// never calls into the app, so any thread may make it at any time.
pub(crate) trait TakenConnection: Send + Sync {
    /// `stream_read`: buffered input first, then one non-blocking read.
    fn read(&self, out: &mut [u8]) -> Step<usize>;
    /// `stream_write`: what the socket takes now.
    fn write(&self, data: &[u8]) -> Step<usize>;
    /// `stream_close`: the handle is gone (what was accepted is still sent).
    fn close(&self);
    /// `websocket_recv`: a `WS_*` code, the message in `message`.
    fn ws_recv(&self, message: &mut WsMessage) -> i32;
    /// `websocket_send`: a `WS_*` code.
    fn ws_send(&self, kind: u32, data: &[u8]) -> i32;
    /// `websocket_close`: the handle is gone; the close frame carries `code` and `reason`.
    fn ws_close(&self, code: u16, reason: &[u8]);
}

/// The app's handle of a taken connection: a thin pointer (the ABI's `void *`) to a boxed
/// `Arc<dyn TakenConnection>` the app owns until its `*_close` takes it back ([`Handle::take`]).
pub(crate) struct Handle;

impl Handle {
    /// The handle the app is given; one allocation per taken connection, not per call.
    pub(crate) fn give(conn: Arc<dyn TakenConnection>) -> *mut c_void {
        Box::into_raw(Box::new(conn)).cast()
    }

    /// The connection behind a handle.
    ///
    /// # Safety
    /// `handle` must come from [`Handle::give`] and not have been taken back.
    pub(crate) unsafe fn get<'a>(handle: *mut c_void) -> &'a dyn TakenConnection {
        // SAFETY: per this function's contract, a live box from `give`.
        unsafe { &**handle.cast::<Arc<dyn TakenConnection>>() }
    }

    /// The app's reference back, on its `*_close`.
    ///
    /// # Safety
    /// As [`Handle::get`]; the handle is not used again.
    pub(crate) unsafe fn take(handle: *mut c_void) -> Arc<dyn TakenConnection> {
        // SAFETY: per this function's contract: the box from `give`, taken back once.
        *unsafe { Box::from_raw(handle.cast::<Arc<dyn TakenConnection>>()) }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts the calls that reach it; `Arc::strong_count` tells who still holds it.
    #[derive(Default)]
    struct Fake {
        reads: AtomicUsize,
        closes: AtomicUsize,
    }

    impl TakenConnection for Fake {
        fn read(&self, out: &mut [u8]) -> Step<usize> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            Step::Done(out.len())
        }
        fn write(&self, _data: &[u8]) -> Step<usize> {
            Step::Pending
        }
        fn close(&self) {
            self.closes.fetch_add(1, Ordering::Relaxed);
        }
        fn ws_recv(&self, _message: &mut WsMessage) -> i32 {
            0
        }
        fn ws_send(&self, _kind: u32, _data: &[u8]) -> i32 {
            0
        }
        fn ws_close(&self, _code: u16, _reason: &[u8]) {}
    }

    #[test]
    fn a_handle_reaches_its_connection_and_gives_its_reference_back_once_taken() {
        let fake = Arc::new(Fake::default());
        let handle = Handle::give(fake.clone());
        assert_eq!(
            Arc::strong_count(&fake),
            2,
            "the handle holds one reference"
        );
        // SAFETY: a handle from `give`, not taken back yet.
        let conn = unsafe { Handle::get(handle) };
        assert_eq!(conn.read(&mut [0; 3]), Step::Done(3));
        assert_eq!(fake.reads.load(Ordering::Relaxed), 1);
        // SAFETY: the same handle, taken back once and not used after.
        let taken = unsafe { Handle::take(handle) };
        taken.close();
        drop(taken);
        assert_eq!(fake.closes.load(Ordering::Relaxed), 1);
        assert_eq!(
            Arc::strong_count(&fake),
            1,
            "taking the handle back released it"
        );
    }
}
