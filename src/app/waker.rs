//! Wakers (ABI 1.1 `waker_new` / `waker_wake` / `waker_free`): how an app that answered
//! `WS_PENDING` asks for its body's `next` to be called again, from any thread.
//!
//! The app holds a `*mut c_void` that is a leaked `Box<Arc<dyn Wake>>`: `waker_free` drops the
//! box, and the `Arc` keeps whatever the server's side of the wake needs alive until then, so a
//! wake that comes after the request ended (or after the server stopped) is memory-safe and does
//! nothing. What a wake does is the transport's business (`Transport::new_waker`): the server
//! schedules the parked request onto a serving thread; `check` wakes its own waiting thread.

use std::ffi::c_void;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The server's side of one waker. Called from any thread, possibly with the app's locks held:
/// it must not call into the app, and must not wait for anything the app may hold.
pub(crate) trait Wake: Send + Sync {
    fn wake(&self);

    /// ABI 1.3 `waker_wake_here`: the caller, a serving thread about to return from another
    /// request's app call, may run the woken request itself once it is done. Where the transport
    /// cannot do that, a plain wake.
    fn wake_here(&self) {
        self.wake();
    }
}

/// The handle `waker_new` hands out.
pub(crate) fn into_handle(wake: Arc<dyn Wake>) -> *mut c_void {
    Box::into_raw(Box::new(wake)) as *mut c_void
}

/// # Safety
/// `handle` must come from [`into_handle`] and not have been passed to [`free`].
pub(crate) unsafe fn wake(handle: *mut c_void) {
    // SAFETY: per the contract, handle is a live Box<Arc<dyn Wake>>, only read here.
    let wake = unsafe { &*(handle as *const Arc<dyn Wake>) };
    wake.wake();
}

/// [`wake`] as `waker_wake_here` asks (see [`Wake::wake_here`]).
///
/// # Safety
/// As for [`wake`].
pub(crate) unsafe fn wake_here(handle: *mut c_void) {
    // SAFETY: per the contract, handle is a live Box<Arc<dyn Wake>>, only read here.
    let wake = unsafe { &*(handle as *const Arc<dyn Wake>) };
    wake.wake_here();
}

/// # Safety
/// `handle` must come from [`into_handle`], and is released exactly once (the ABI's rule).
pub(crate) unsafe fn free(handle: *mut c_void) {
    // SAFETY: per the contract, handle is a live Box<Arc<dyn Wake>> that nobody else frees.
    drop(unsafe { Box::from_raw(handle as *mut Arc<dyn Wake>) });
}

/// A wake flag a thread can wait on: the waker of a request run outside the event loop (`check`),
/// where waiting is the only thing to do.
#[derive(Default)]
pub(crate) struct ThreadWake {
    woken: Mutex<bool>,
    signal: Condvar,
}

impl ThreadWake {
    /// Waits up to `limit` for a wake since the last wait; true if one came.
    pub(crate) fn wait(&self, limit: Duration) -> bool {
        let guard = self.woken.lock().unwrap_or_else(|e| e.into_inner());
        let (mut woken, _) = self
            .signal
            .wait_timeout_while(guard, limit, |woken| !*woken)
            .unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *woken, false)
    }
}

impl Wake for ThreadWake {
    fn wake(&self) {
        *self.woken.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.signal.notify_all();
    }
}
