//! [`Exchange`]: one request as the Python side sees it — the server's `io` handle and host
//! vtable, whether the response was started or has sent body bytes (PEP 3333's `exc_info` rules
//! depend on both), and the guard that keeps host I/O on the thread the server is running the
//! request on.
//!
//! Python objects (`wsgi.input`, `start_response`, `write`) hold an `Arc<Exchange>` and may outlive
//! the request (an app can stash `environ`), or be used from a thread the app started. The ABI
//! allows host I/O only from the thread inside `call`/`next`, and `io` is dead after `close`; so
//! every host I/O call first checks that the calling thread is the one the server is running the
//! request on right now ([`Exchange::enter`] marks it), and raises a Python `OSError` otherwise.
//!
//! Every host call that may wait for the client (`read`, `write`) releases the GIL: with several
//! serving threads the GIL would otherwise serialise them on the slowest client.
//!
//! A queued request ([`crate::handoff`]) runs on whichever serving thread holds the GIL, which
//! is not the request's: its exchange records what the app asks ([`Recording`]) and the
//! request's own `next` sends it ([`Exchange::replay`]).

use crate::recording::{self, RecordedHead, Recording};
use app_abi::raw::{
    WsBytes, WsHost, WsPair, WsRequest, WS_ERR_APP, WS_ERR_CLIENT_GONE, WS_ERR_INVALID,
    WS_ERR_STATE, WS_OK, WS_RESPONSE_REPLACE,
};
use app_abi::{AbiError, LogLevel, Logger};
use core::ffi::c_void;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// No thread is running the request (between `next` calls, during `close`, after it).
const NO_THREAD: u64 = 0;

/// A number per OS thread, never [`NO_THREAD`], cheaper to compare than `ThreadId`.
fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(NO_THREAD + 1);
    thread_local! {
        static TOKEN: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    TOKEN.with(|t| *t)
}

/// PEP 3333 response state, as far as the bridge must know it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Head {
    /// `start_response` succeeded at least once.
    pub(crate) started: bool,
    /// Body bytes left the app (through `write` or the iterable): the head is on its way, so
    /// `start_response(..., exc_info)` must re-raise instead of replacing.
    pub(crate) body_sent: bool,
    /// The `Content-Length` of the response started last, if it gave one.
    declared_length: Option<u64>,
    /// Body bytes counted so far (through `write` or the iterable; not a handed-over file).
    body_bytes: u64,
}

impl Head {
    /// The app has produced all the body its `Content-Length` declared: PEP 3333 lets the
    /// server stop iterating there ("should stop iterating over the response when enough data
    /// has been sent").
    pub(crate) fn body_complete(&self) -> bool {
        self.declared_length.is_some_and(|n| self.body_bytes >= n)
    }
}

/// A raw pointer handed to a closure that runs without the GIL on the same thread.
struct SendPtr<T>(*mut T);
// SAFETY: only used inside `Python::allow_threads`, which runs the closure on the calling thread;
// the pointer never reaches another thread.
unsafe impl<T> Send for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// A method, so that closures capture the whole `SendPtr` rather than its non-`Send` field.
    fn get(&self) -> *mut T {
        self.0
    }
}

/// One request's handle on the server. See the module docs.
pub(crate) struct Exchange {
    io: *mut c_void,
    host: &'static WsHost,
    logger: Logger,
    /// The [`thread_token`] of the thread inside `call`/`next`, or [`NO_THREAD`].
    active: AtomicU64,
    head: Mutex<Head>,
    /// Reading the request body failed by the client's fault ([`crate::body_errors`]): the
    /// server answers the client, and what the app raises next is not the app's error.
    body_failed: AtomicBool,
    /// For a queued request: what the app asked of the server, sent later by [`Exchange::replay`]
    /// (`None`: asked of the server straight away).
    recording: Mutex<Option<Recording>>,
}

// SAFETY: `io` is only passed to the host from the thread marked in `active` (checked by
// `require_active` before every use), which is the thread the server is running the request on, as
// the ABI requires; `host` and the logger are process-lifetime and usable from any thread.
unsafe impl Send for Exchange {}
// SAFETY: as for Send; the mutable state is behind an atomic and a mutex.
unsafe impl Sync for Exchange {}

/// Marks the current thread as the one running the request until dropped.
pub(crate) struct Active<'e>(&'e Exchange);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.store(NO_THREAD, Ordering::Release);
    }
}

impl Exchange {
    /// The exchange of `req`, or `None` if the server gave no host vtable.
    ///
    /// # Safety
    /// `req` must be the server's request, valid (with its `io`) until the body's `close` returns,
    /// and its host vtable and log context process-lifetime, as the header specifies. The caller
    /// must stop using `io` when the request ends: [`Exchange::enter`] is then never called again.
    pub(crate) unsafe fn new(req: &WsRequest) -> Option<Exchange> {
        // SAFETY: the header makes `host` null or a process-lifetime vtable.
        let host: &'static WsHost = unsafe { req.host.as_ref() }?;
        Some(Exchange {
            io: req.io,
            host,
            // SAFETY: as above; `log_ctx` is the request's, process-lifetime too.
            logger: unsafe { Logger::from_raw(req.host, req.log_ctx) },
            active: AtomicU64::new(NO_THREAD),
            head: Mutex::new(Head::default()),
            body_failed: AtomicBool::new(false),
            recording: Mutex::new(None),
        })
    }

    /// From now on the app's head, `write()` bytes and file are kept for [`Exchange::replay`],
    /// and `wsgi.input` is at its end (only requests without a body are queued).
    pub(crate) fn record(&self, recording: Recording) {
        *self.recording() = Some(recording);
    }

    fn recording(&self) -> std::sync::MutexGuard<'_, Option<Recording>> {
        self.recording.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends what a queued request's app asked for, in order (head, `write()` bytes, file), from
    /// the request's own thread (marked by [`Exchange::enter`]); asks from then on go straight to
    /// the server. `length`: the body's exact length where the app gave none, sent as its
    /// `Content-Length` (what `ws_body.length_hint` says for a request answered straight away).
    pub(crate) fn replay(&self, length: Option<u64>) -> i32 {
        let Some(recording) = self.recording().take() else {
            return WS_OK;
        };
        if self.require_active("the response").is_err() {
            return WS_ERR_STATE;
        }
        let Some(mut head) = recording.head else {
            // The app broke PEP 3333 before starting a response: its failure says so.
            return WS_OK;
        };
        let declared = self.head().declared_length;
        if let (None, Some(length)) = (declared, length) {
            head.headers
                .push((b"Content-Length".to_vec(), length.to_string().into_bytes()));
        }
        let Some(start) = self.host.start_response else {
            return WS_ERR_STATE;
        };
        let pairs = ws_pairs(&head.headers);
        // SAFETY: `io` is live (this thread runs the request: checked above); `reason` and `pairs`
        // are valid for the call.
        let rc = unsafe {
            start(
                self.io,
                head.status,
                WsBytes::from_slice(&head.reason),
                pairs.as_ptr(),
                pairs.len(),
                head.flags,
            )
        };
        if rc != WS_OK {
            self.logger.log(
                LogLevel::Error,
                &format!("the server refused a queued request's response head ({rc})"),
            );
            return WS_ERR_APP;
        }
        if !recording.written.is_empty() {
            let Some(write) = self.host.write else {
                return WS_ERR_STATE;
            };
            let written = &recording.written;
            // SAFETY: `io` is live (checked above); the bytes are valid for the call.
            let rc = unsafe { write(self.io, written.as_ptr(), written.len()) };
            if rc != WS_OK {
                return rc;
            }
        }
        if let Some(file) = recording.file {
            let send_file = self.host.has_send_file().then_some(self.host.send_file);
            let Some(Some(send_file)) = send_file else {
                return WS_ERR_STATE;
            };
            use std::os::fd::AsRawFd;
            // SAFETY: `io` is live (checked above); the host duplicates the descriptor, which is
            // ours and open for the call.
            let rc = unsafe {
                send_file(
                    self.io,
                    file.fd.as_raw_fd(),
                    file.offset,
                    file.length,
                    file.flags,
                )
            };
            if rc != WS_OK {
                return rc;
            }
        }
        WS_OK
    }

    /// The server is in `call`/`next` on this thread: host I/O is allowed until the guard drops.
    pub(crate) fn enter(&self) -> Active<'_> {
        self.active.store(thread_token(), Ordering::Release);
        Active(self)
    }

    fn require_active(&self, what: &str) -> PyResult<()> {
        if self.active.load(Ordering::Acquire) == thread_token() {
            Ok(())
        } else {
            Err(PyOSError::new_err(format!(
                "{what} used outside its request: only while the server runs the app's call or \
                 iteration, on that thread (not after the response ended, not from another thread)"
            )))
        }
    }

    pub(crate) fn logger(&self) -> Logger {
        self.logger
    }

    pub(crate) fn log(&self, level: LogLevel, msg: &str) {
        self.logger.log(level, msg);
    }

    /// The app raised or broke a rule: an error, unless the request body had failed first —
    /// then the exception is most likely that failure's (the client's fault, answered by the
    /// server), and only worth a debug line.
    pub(crate) fn log_app_failure(&self, msg: &str) {
        if self.body_failed.load(Ordering::Relaxed) {
            self.logger.log(
                LogLevel::Debug,
                &format!("{msg}\n(after the request body failed: the server answers the client)"),
            );
        } else {
            self.logger.log(LogLevel::Error, msg);
        }
    }

    pub(crate) fn head(&self) -> Head {
        *self.head.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `len` body bytes left the app (0 for a handed-over file, whose length is the server's
    /// business).
    pub(crate) fn mark_body_sent(&self, len: usize) {
        let mut head = self.head.lock().unwrap_or_else(|e| e.into_inner());
        head.body_sent = true;
        head.body_bytes = head.body_bytes.saturating_add(len as u64);
    }

    /// `wsgi.input`'s source: up to `buf.len()` de-chunked body bytes, 0 at the end, with the GIL
    /// released while the server waits for the client.
    pub(crate) fn read(&self, py: Python<'_>, buf: &mut [u8]) -> PyResult<usize> {
        self.require_active("wsgi.input")?;
        if self.recording().is_some() {
            // Only requests without a body are queued: the app reads its end.
            return Ok(0);
        }
        let Some(read) = self.host.read else {
            return Err(PyOSError::new_err(
                "the server offers no request body reader",
            ));
        };
        let (io, out, cap) = (SendPtr(self.io), SendPtr(buf.as_mut_ptr()), buf.len());
        let (rc, n) = py.allow_threads(move || {
            let mut n = 0usize;
            // SAFETY: `io` is live (this thread runs the request: checked above); `out` is writable
            // for `cap` bytes and `n` is a valid out-pointer, both for the duration of the call.
            let rc = unsafe { read(io.get(), out.get(), cap, &mut n) };
            (rc, n)
        });
        if rc != WS_OK {
            let why = AbiError::check(rc).err().unwrap_or(AbiError::Other(rc));
            let message = format!("reading the request body: {why}");
            if let Some(err) = crate::body_errors::for_code(py, rc, &message) {
                self.body_failed.store(true, Ordering::Relaxed);
                return Err(err);
            }
        }
        host_result(rc, "reading the request body")?;
        Ok(n.min(cap))
    }

    /// PEP 3333's `write(data)`: sent now, with the GIL released while the client is slow.
    pub(crate) fn write(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        self.require_active("write()")?;
        if let Some(recording) = self.recording().as_mut() {
            if !self.head().started {
                return Err(PyRuntimeError::new_err(
                    "write() before start_response, or after the response ended",
                ));
            }
            recording.written.extend_from_slice(data);
            self.mark_body_sent(data.len());
            return Ok(());
        }
        let Some(write) = self.host.write else {
            return Err(PyOSError::new_err("the server offers no write callable"));
        };
        let (io, ptr, len) = (
            SendPtr(self.io),
            SendPtr(data.as_ptr().cast_mut()),
            data.len(),
        );
        // SAFETY: `io` is live (checked above) and `data` is valid for reads during the call; the
        // host only reads it (the `cast_mut` merely satisfies `SendPtr`).
        let rc = py.allow_threads(move || unsafe { write(io.get(), ptr.get(), len) });
        if rc == WS_ERR_STATE {
            return Err(PyRuntimeError::new_err(
                "write() before start_response, or after the response ended",
            ));
        }
        host_result(rc, "writing the response")?;
        self.mark_body_sent(len);
        Ok(())
    }

    /// ABI 1.2 `send_file`: the rest of the response is bytes `offset..offset + length` of
    /// `fd` (the server duplicates it). `None` when the server is older than 1.2 (or the
    /// request is not this thread's now): the caller iterates the file instead. The host's
    /// code otherwise (`WS_ERR_INVALID`: not a regular file, or past its end).
    pub(crate) fn send_file(&self, fd: i32, offset: u64, length: u64, flags: u32) -> Option<i32> {
        self.require_active("wsgi.file_wrapper").ok()?;
        if let Some(recording) = self.recording().as_mut() {
            if !self.host.has_send_file() {
                return None;
            }
            let Some(file) = recording::file(fd, offset, length, flags) else {
                return Some(WS_ERR_INVALID);
            };
            recording.file = Some(file);
            self.mark_body_sent(0);
            return Some(WS_OK);
        }
        let send_file = self.host.has_send_file().then_some(self.host.send_file)??;
        // SAFETY: `io` is live (checked above); the host only duplicates `fd` during the call.
        let rc = unsafe { send_file(self.io, fd, offset, length, flags) };
        if rc == WS_OK {
            self.mark_body_sent(0);
        }
        Some(rc)
    }

    /// The host's `start_response` with a validated, latin-1 encoded head (`declared_length`:
    /// its `Content-Length`). `Ok` marks the response started.
    pub(crate) fn start_response(
        &self,
        status: u16,
        reason: &[u8],
        headers: &[(Vec<u8>, Vec<u8>)],
        declared_length: Option<u64>,
        flags: u32,
    ) -> PyResult<()> {
        self.require_active("start_response")?;
        if let Some(recording) = self.recording().as_mut() {
            if !recording::head_is_valid(status, reason, headers) {
                self.logger.log(
                    LogLevel::Error,
                    "the app's response head breaks the server's rules: the status must be \
                     200-599, header names tokens and values without CR/LF/NUL",
                );
                return Err(refused_head());
            }
            recording.head = Some(RecordedHead {
                status,
                reason: reason.to_vec(),
                headers: headers.to_vec(),
                // The server gets one head: nothing to replace there.
                flags: flags & !WS_RESPONSE_REPLACE,
            });
            self.mark_started(declared_length);
            return Ok(());
        }
        let Some(start) = self.host.start_response else {
            return Err(PyOSError::new_err("the server offers no start_response"));
        };
        let pairs = ws_pairs(headers);
        // SAFETY: `io` is live (checked above); `reason` and `pairs` (and the bytes they point to)
        // are valid for the duration of the call, which is all the header lets the host rely on.
        let rc = unsafe {
            start(
                self.io,
                status,
                WsBytes::from_slice(reason),
                pairs.as_ptr(),
                pairs.len(),
                flags,
            )
        };
        match AbiError::check(rc) {
            Ok(()) => {
                self.mark_started(declared_length);
                Ok(())
            }
            Err(AbiError::Invalid) => Err(refused_head()),
            Err(AbiError::State) => Err(PyRuntimeError::new_err(
                "start_response refused: the response head was already sent",
            )),
            Err(err) => Err(PyOSError::new_err(format!("start_response: {err}"))),
        }
    }
}

impl Exchange {
    fn mark_started(&self, declared_length: Option<u64>) {
        let mut head = self.head.lock().unwrap_or_else(|e| e.into_inner());
        head.started = true;
        head.declared_length = declared_length;
    }
}

/// The ABI's view of `headers`, valid while they are.
fn ws_pairs(headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<WsPair> {
    headers
        .iter()
        .map(|(n, v)| WsPair {
            name: WsBytes::from_slice(n),
            value: WsBytes::from_slice(v),
        })
        .collect()
}

fn refused_head() -> PyErr {
    PyValueError::new_err(
        "the server refused the response head: the status must be 200-599, header names tokens \
         and values without CR/LF/NUL (see the server log)",
    )
}

/// A host return code as a Python exception: `OSError` with the server's reason.
fn host_result(rc: i32, doing: &str) -> PyResult<()> {
    if rc == WS_OK {
        return Ok(());
    }
    let err = AbiError::check(rc).err().unwrap_or(AbiError::Other(rc));
    let msg = format!("{doing}: {err}");
    if rc == WS_ERR_CLIENT_GONE {
        Err(pyo3::exceptions::PyConnectionAbortedError::new_err(msg))
    } else {
        Err(PyOSError::new_err(msg))
    }
}
