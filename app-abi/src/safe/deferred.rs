//! ABI 1.1 deferred responses in safe Rust: a [`Waker`] any thread may use, non-blocking request
//! body reads ([`TryRead`]), and [`DeferredBody`] — a body whose `next` may answer "not yet"
//! ([`Next::Pending`]) and starts the response itself once the head is known ([`BodyIo`]).
//!
//! An async app answers in three steps: `call` returns [`crate::Response::deferred`] at once (the
//! header: `call` never pends), the work runs elsewhere (a runtime's threads) and calls
//! [`Waker::wake`] when it made progress, and the server then calls the body's `next` again on a
//! serving thread, where [`BodyIo::start_response`] and [`BodyIo::try_read`] are answered.
//!
//! The 1.1 host callbacks are absent on a 1.0 server: an app that needs them refuses to load there
//! with [`crate::InitContext::require_abi_1_1`].

use super::error::AbiError;
use super::log::Logger;
use super::request::with_pairs;
use crate::raw::{WsBytes, WsHost, WS_OK, WS_PENDING};
use core::ffi::c_void;
use core::ptr::NonNull;
use std::sync::Arc;

/// What [`BodyIo::try_read`] (or [`crate::Request::try_read`]) found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRead {
    /// This many bytes were copied into the buffer (never 0).
    Data(usize),
    /// The request body is complete (and stays so).
    End,
    /// No byte is buffered now. Return [`Next::Pending`]: the server calls `next` again once bytes
    /// arrived (no [`Waker`] needed for that).
    Pending,
    /// The host refused: the body is too large, malformed, the client is gone, ...
    Failed(AbiError),
}

/// One answer of [`DeferredBody::next`]; a chunk borrows the body until its next `next` call.
#[derive(Debug)]
pub enum Next<'a> {
    /// The next chunk of the response body. Empty chunks are skipped (`next` is called again at
    /// once): an empty chunk would end a chunked body on the wire.
    Chunk(&'a [u8]),
    /// The body is complete.
    End,
    /// Nothing yet: the server parks the request, without a thread, until a [`Waker`] of this
    /// request is woken (or request-body bytes arrived after a [`TryRead::Pending`]).
    Pending,
    /// The app failed: the server answers 500 if no byte was sent, else closes the connection.
    /// Log the reason before returning this.
    Error,
}

/// A response body that may answer later (ABI 1.1): the server pulls it with `next`, which may run
/// on any serving thread, one call at a time, until it returns [`Next::End`] or [`Next::Error`] or
/// the request ends; then the body is dropped (the header's `close`). Dropping it is where the app
/// cancels work still running for the request — the server drops it on client disconnect, on
/// `--timeout` (after answering 504 if nothing was sent) and on a drain that ran out of time.
pub trait DeferredBody: Send + 'static {
    /// Produces the next step. `io` offers the host calls answered during `next`: start the
    /// response (once, before the first chunk), read the request body without waiting, make a
    /// [`Waker`].
    fn next<'s>(&'s mut self, io: &mut BodyIo<'_>) -> Next<'s>;
}

/// The host calls a [`DeferredBody`] may make during its `next` (the header's "Host I/O
/// phases"), or an app during `call` ([`crate::Request::io`]). Borrowed for one `next` (or
/// `call`) only, so it never reaches another thread or outlives the request.
#[derive(Debug)]
pub struct BodyIo<'a> {
    host: &'a WsHost,
    io: *mut c_void,
    logger: Logger,
}

impl<'a> BodyIo<'a> {
    /// Wraps the request's host vtable and io handle for one `next` call.
    ///
    /// # Safety
    /// `io` must be the handle of a request whose `call` or body's `next` is running on this
    /// thread now (both are answered the same host calls), and `host` that request's vtable.
    pub(crate) unsafe fn new(host: &'a WsHost, io: *mut c_void, logger: Logger) -> BodyIo<'a> {
        BodyIo { host, io, logger }
    }

    /// Sends the response head (PEP 3333 `start_response`, flags 0): status, an optional reason
    /// (empty = the standard phrase) and headers, copied by the host during the call. Hop-by-hop
    /// headers are the server's and rejected ([`AbiError::Invalid`]).
    pub fn start_response<'h>(
        &mut self,
        status: u16,
        reason: &str,
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    ) -> Result<(), AbiError> {
        let f = self.host.start_response.ok_or(AbiError::State)?;
        with_pairs(headers, |pairs| {
            // SAFETY: `io` is the running request's handle (`new`'s contract); `reason` and
            // `pairs` are valid for the duration of the call, all the header lets the host keep.
            AbiError::check(unsafe {
                f(
                    self.io,
                    status,
                    WsBytes::from_slice(reason.as_bytes()),
                    pairs.as_ptr(),
                    pairs.len(),
                    0,
                )
            })
        })
    }

    /// Reads request-body bytes without waiting; see [`TryRead`].
    pub fn try_read(&mut self, buf: &mut [u8]) -> TryRead {
        // SAFETY: `io` is the running request's handle on this thread (`new`'s contract).
        unsafe { try_read(self.host, self.io, buf) }
    }

    /// A new [`Waker`] for this request; `None` if the host could not make one (or is 1.0).
    pub fn waker(&mut self) -> Option<Waker> {
        // SAFETY: as for `try_read`.
        unsafe { Waker::new(self.host, self.io) }
    }

    /// The vtable, the request's handle and its logger, for the upgrade calls.
    pub(crate) fn parts(&self) -> (&'a WsHost, *mut c_void, Logger) {
        (self.host, self.io, self.logger)
    }

    /// The request's logger (it may be kept past the request).
    pub fn logger(&self) -> Logger {
        self.logger
    }

    pub(crate) fn host(&self) -> &WsHost {
        self.host
    }

    pub(crate) fn raw_io(&self) -> *mut c_void {
        self.io
    }
}

/// `host.try_read` over `buf`.
///
/// # Safety
/// `io` must be a request handle `host` answers on this thread now (during `call` or `next`).
pub(crate) unsafe fn try_read(host: &WsHost, io: *mut c_void, buf: &mut [u8]) -> TryRead {
    let Some(f) = host_try_read(host) else {
        return TryRead::Failed(AbiError::State);
    };
    if buf.is_empty() {
        return TryRead::Failed(AbiError::Invalid);
    }
    let mut n = 0usize;
    // SAFETY: the caller's contract for `io`; `buf` is writable for `buf.len()` bytes and `n` is
    // a valid out-pointer, both for the duration of the call.
    let rc = unsafe { f(io, buf.as_mut_ptr(), buf.len(), &mut n) };
    match rc {
        WS_PENDING => TryRead::Pending,
        WS_OK if n == 0 => TryRead::End,
        WS_OK if n <= buf.len() => TryRead::Data(n),
        WS_OK => TryRead::Failed(AbiError::Invalid),
        err => TryRead::Failed(AbiError::check(err).err().unwrap_or(AbiError::Other(err))),
    }
}

/// Whether the host vtable reaches `field` (ABI 1.1 fields are absent from a 1.0 host's `size`).
macro_rules! host_has {
    ($host:expr, $field:ident) => {
        ($host.size as usize)
            >= core::mem::offset_of!(WsHost, $field) + core::mem::size_of_val(&$host.$field)
    };
}

fn host_try_read(
    host: &WsHost,
) -> Option<unsafe extern "C" fn(*mut c_void, *mut u8, usize, *mut usize) -> i32> {
    if host_has!(host, try_read) {
        host.try_read
    } else {
        None
    }
}

/// Whether `host` offers every ABI 1.1 request call (try_read and the three waker calls).
pub(crate) fn host_is_1_1(host: &WsHost) -> bool {
    host_has!(host, waker_free)
        && host.try_read.is_some()
        && host.waker_new.is_some()
        && host.waker_wake.is_some()
        && host.waker_free.is_some()
}

/// A handle that asks the server to call the request's `next` again (the header's `waker_wake`).
///
/// `Send + Sync`: wake it from any thread, any number of times — a wake that comes while `next`
/// runs is not lost, and one after the request ended does nothing. Dropping it releases it
/// (`waker_free`, exactly once), before or after the request ended. Share one with an [`Arc`], or
/// turn it into a [`std::task::Waker`] with [`Waker::into_task_waker`].
#[derive(Debug)]
pub struct Waker {
    /// The host vtable: process-lifetime (header), so a waker may outlive its request.
    host: &'static WsHost,
    raw: NonNull<c_void>,
}

// SAFETY: the header lets `waker_wake` and `waker_free` be called from any thread, and the
// vtable they live in is immutable for the life of the process.
unsafe impl Send for Waker {}
// SAFETY: `wake(&self)` is the only shared-access operation, and the header makes `waker_wake`
// callable concurrently from any thread; `waker_free` needs `self` by value (Drop).
unsafe impl Sync for Waker {}

impl Waker {
    /// `host.waker_new(io)`.
    ///
    /// # Safety
    /// `io` must be a request handle `host` answers on this thread now (during `call` or `next`),
    /// and `host` must be the server's process-lifetime vtable.
    pub(crate) unsafe fn new(host: &WsHost, io: *mut c_void) -> Option<Waker> {
        if !host_is_1_1(host) {
            return None;
        }
        // SAFETY: the header makes the vtable live as long as the process.
        let host: &'static WsHost = unsafe { &*(host as *const WsHost) };
        let new = host.waker_new?;
        // SAFETY: the caller's contract for `io`.
        let raw = NonNull::new(unsafe { new(io) })?;
        Some(Waker { host, raw })
    }

    /// Asks the server to call `next` again (soon, on a serving thread).
    pub fn wake(&self) {
        if let Some(wake) = self.host.waker_wake {
            // SAFETY: `raw` came from `waker_new` and is not freed before `self` is dropped; the
            // header allows this call from any thread, any number of times.
            unsafe { wake(self.raw.as_ptr()) }
        }
    }

    /// [`Waker::wake`] from a serving thread in `call` or `next` of another request that returns
    /// soon and waits no more afterwards: the server may run this request's `next` on the calling
    /// thread once it is done there (ABI 1.3 `waker_wake_here`), instead of waking another
    /// thread. Elsewhere, or on an older server, the same as [`Waker::wake`].
    pub fn wake_here(&self) {
        let here = self
            .host
            .waker_wake_here
            .filter(|_| self.host.has_wake_here());
        match here {
            // SAFETY: as in `wake`; the host's size covers the field (checked just above).
            Some(wake_here) => unsafe { wake_here(self.raw.as_ptr()) },
            None => self.wake(),
        }
    }

    /// A [`std::task::Waker`] whose wakes call [`Waker::wake`], for futures polled in `next`.
    pub fn into_task_waker(self) -> std::task::Waker {
        std::task::Waker::from(Arc::new(TaskWake(self)))
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        if let Some(free) = self.host.waker_free {
            // SAFETY: `raw` came from `waker_new` and is released exactly once, here.
            unsafe { free(self.raw.as_ptr()) }
        }
    }
}

/// Adapts a [`Waker`] to [`std::task::Wake`].
struct TaskWake(Waker);

impl std::task::Wake for TaskWake {
    fn wake(self: Arc<Self>) {
        self.0.wake();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.wake();
    }
}
