//! Raw upgraded connections in safe Rust (ABI 1.2): after a 101 the app owns the connection as a
//! two-way byte stream (its own protocol, or a WebSocket stack of its own such as axum's), read
//! and written without waiting from any thread.

use super::connection::{take_over, EventTarget, Events, Handle, Kind};
use super::deferred::BodyIo;
use super::error::AbiError;
use super::log::Logger;
use super::request::{with_pairs, Request};
use crate::raw::{WsHost, WS_OK, WS_PENDING};
use core::ffi::c_void;
use std::sync::Arc;

/// What runs a raw upgraded connection; the same rules as [`crate::WebSocketHandler`].
pub trait StreamHandler: Send + 'static {
    /// One event (see [`Events`]).
    fn on_event(&mut self, stream: &Upgraded, events: Events);
}

impl<F: FnMut(&Upgraded, Events) + Send + 'static> StreamHandler for F {
    fn on_event(&mut self, stream: &Upgraded, events: Events) {
        self(stream, events)
    }
}

impl<H: StreamHandler> EventTarget<Upgraded> for H {
    fn dispatch(&mut self, conn: &Upgraded, events: Events) {
        self.on_event(conn, events)
    }
}

/// One step of [`Upgraded::read`] or [`Upgraded::write`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamIo {
    /// This many bytes were read or written (never 0; a write may take fewer than offered).
    Done(usize),
    /// A read found the end: the client closed its side (and it stays so).
    End,
    /// Nothing now: `on_event` with readable (read) or writable (write) follows.
    Pending,
    /// Closed, or the host refused.
    Failed(AbiError),
}

/// One raw upgraded connection: cheap to clone, `Send + Sync`, never waits. Released as a
/// [`crate::WebSocket`] is: [`Upgraded::close`], or the last clone after the connection ended;
/// dropping the last clone of a live one closes it.
#[derive(Clone)]
pub struct Upgraded(Arc<Handle>);

impl std::fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgraded")
            .field("closed", &self.0.is_closed())
            .finish()
    }
}

impl Upgraded {
    fn new(handle: Handle) -> Upgraded {
        Upgraded(Arc::new(handle))
    }

    /// Reads what the client sent (bytes it sent right after the request head come first).
    pub fn read(&self, buf: &mut [u8]) -> StreamIo {
        let Some(read) = self.0.host.stream_read else {
            return StreamIo::Failed(AbiError::State);
        };
        if buf.is_empty() {
            return StreamIo::Failed(AbiError::Invalid);
        }
        let mut n = 0usize;
        // SAFETY: `raw` is the live handle (held by the lock); `buf` is writable for its length
        // and `n` a valid out-pointer during the call.
        let rc = self
            .0
            .with(|raw| unsafe { read(raw.as_ptr(), buf.as_mut_ptr(), buf.len(), &mut n) });
        match rc {
            Ok(WS_OK) if n == 0 => StreamIo::End,
            Ok(WS_OK) if n <= buf.len() => StreamIo::Done(n),
            Ok(WS_OK) => StreamIo::Failed(AbiError::Invalid),
            Ok(WS_PENDING) => StreamIo::Pending,
            Ok(err) => StreamIo::Failed(AbiError::check(err).err().unwrap_or(AbiError::Other(err))),
            Err(err) => StreamIo::Failed(err),
        }
    }

    /// Writes some of `buf` (what the server accepted is sent, in order, even after `close`).
    pub fn write(&self, buf: &[u8]) -> StreamIo {
        let Some(write) = self.0.host.stream_write else {
            return StreamIo::Failed(AbiError::State);
        };
        if buf.is_empty() {
            return StreamIo::Done(0);
        }
        let mut n = 0usize;
        // SAFETY: as for `read`; `buf` is readable during the call.
        let rc = self
            .0
            .with(|raw| unsafe { write(raw.as_ptr(), buf.as_ptr(), buf.len(), &mut n) });
        match rc {
            Ok(WS_OK) if n > 0 && n <= buf.len() => StreamIo::Done(n),
            Ok(WS_OK) => StreamIo::Failed(AbiError::Invalid),
            Ok(WS_PENDING) => StreamIo::Pending,
            Ok(err) => StreamIo::Failed(AbiError::check(err).err().unwrap_or(AbiError::Other(err))),
            Err(err) => StreamIo::Failed(err),
        }
    }

    /// Closes the connection once what was written is sent. Later calls fail; a second close
    /// does nothing.
    pub fn close(&self) {
        self.0.close(0, b"");
    }

    /// Whether [`Upgraded::close`] was called (or the connection released).
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// `upgrade` on `io` with `headers` (which must name the protocol in `Upgrade`).
///
/// # Safety
/// `io` must be a request handle `host` answers on this thread now (during `call` or `next`).
pub(crate) unsafe fn upgrade<'h>(
    host: &WsHost,
    io: *mut c_void,
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    handler: impl StreamHandler,
    logger: Logger,
) -> Result<Upgraded, AbiError> {
    let upgrade = host.upgrade.ok_or(AbiError::State)?;
    if !host.has_upgrades() {
        return Err(AbiError::State);
    }
    with_pairs(headers, |pairs| {
        take_over(
            host,
            Kind::Stream,
            handler,
            logger,
            Upgraded::new,
            |raw_handler, out| {
                // SAFETY: the caller's contract for `io`; `pairs` and `raw_handler` are valid
                // during the call (the server copies them); `out` is writable.
                unsafe { upgrade(io, pairs.as_ptr(), pairs.len(), 0, raw_handler, out) }
            },
        )
    })
}

impl Request<'_> {
    /// Answers 101 now and takes the connection as a byte stream; `headers` must hold `Upgrade`
    /// naming one protocol the client offered (the server adds `Connection: Upgrade`). Return
    /// [`crate::Response::started`] with an empty body afterwards.
    pub fn upgrade(
        &mut self,
        headers: &[(&str, &str)],
        handler: impl StreamHandler,
    ) -> Result<Upgraded, AbiError> {
        let host = self.host().ok_or(AbiError::State)?;
        let headers = headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        // SAFETY: `io` is this request's handle, during `call` on this thread.
        unsafe { upgrade(host, self.as_raw().io, headers, handler, self.logger()) }
    }
}

impl BodyIo<'_> {
    /// [`Request::upgrade`] from a deferred body's `next` (answer [`crate::Next::End`] afterwards).
    pub fn upgrade<'h>(
        &mut self,
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
        handler: impl StreamHandler,
    ) -> Result<Upgraded, AbiError> {
        let (host, io, logger) = self.parts();
        // SAFETY: `io` is the running request's handle on this thread (BodyIo's contract).
        unsafe { upgrade(host, io, headers, handler, logger) }
    }
}
