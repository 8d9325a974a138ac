//! WebSockets in safe Rust (ABI 1.2): the server does RFC 6455 (handshake, framing, masking,
//! fragments, pings, the closing handshake, UTF-8 and size checks); the app sees messages.
//!
//! ```
//! use app_abi::{Events, Outgoing, Recv, Request, Response, Sent, WebSocket};
//!
//! /// Echoes every message; a message the client cannot take yet waits in `held`.
//! #[derive(Default)]
//! struct Echo {
//!     held: Option<app_abi::Message>,
//! }
//!
//! impl app_abi::WebSocketHandler for Echo {
//!     fn on_event(&mut self, ws: &WebSocket, _events: Events) {
//!         loop {
//!             let msg = match self.held.take() {
//!                 Some(msg) => msg,
//!                 None => match ws.recv() {
//!                     Recv::Message(msg) => msg,
//!                     Recv::Pending => return,           // READABLE comes
//!                     Recv::Closed { .. } | Recv::Failed(_) => return ws.close(1000, ""),
//!                 },
//!             };
//!             if ws.send(msg.as_outgoing()) == Sent::WouldBlock {
//!                 self.held = Some(msg);                 // WRITABLE comes
//!                 return;
//!             }
//!         }
//!     }
//! }
//!
//! fn call(req: &mut Request<'_>) -> Response {
//!     if req.is_websocket() {
//!         Response::websocket(Echo::default())
//!     } else {
//!         Response::text(426, "this route speaks WebSocket\n")
//!     }
//! }
//! ```
//!
//! A [`WebSocket`] is cheap to clone and `Send + Sync`: a broadcast keeps clones and sends from
//! any thread. Every call returns at once; "not now" is [`Recv::Pending`] or [`Sent::WouldBlock`],
//! and the handler's `on_event` follows (on a serving thread) when it may make progress.

use super::connection::{take_over, EventTarget, Events, Handle, Kind};
use super::deferred::BodyIo;
use super::error::AbiError;
use super::log::Logger;
use super::request::{with_pairs, Request};
use crate::raw::{
    WsBytes, WsHost, WsMessage, WS_MSG_BINARY, WS_MSG_CLOSE, WS_MSG_TEXT, WS_OK, WS_PENDING,
    WS_REQ_WEBSOCKET,
};
use core::ffi::c_void;
use std::sync::Arc;

/// What runs a WebSocket: `on_event` is called on a serving thread, one at a time, after a
/// `recv` answered [`Recv::Pending`] (readable), a `send` answered [`Sent::WouldBlock`]
/// (writable), when the connection ended (closed) or the server drains (going away). Dropped
/// when the connection is released.
///
/// It must not block for long (it holds a serving thread), and should not keep a clone of its own
/// `WebSocket` (it is given one each time; a clone of its own would keep a closed connection's
/// handle until the app closes it).
pub trait WebSocketHandler: Send + 'static {
    /// One event (see [`Events`]); a spurious one is allowed: calls then answer "pending" again.
    fn on_event(&mut self, ws: &WebSocket, events: Events);
}

impl<F: FnMut(&WebSocket, Events) + Send + 'static> WebSocketHandler for F {
    fn on_event(&mut self, ws: &WebSocket, events: Events) {
        self(ws, events)
    }
}

impl<H: WebSocketHandler> EventTarget<WebSocket> for H {
    fn dispatch(&mut self, conn: &WebSocket, events: Events) {
        self.on_event(conn, events)
    }
}

/// A received message (copied out of the server's buffer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Text; the server checked it is UTF-8.
    Text(String),
    /// Binary.
    Binary(Vec<u8>),
}

impl Message {
    /// The message as [`WebSocket::send`] takes it (an echo sends back what it got).
    pub fn as_outgoing(&self) -> Outgoing<'_> {
        match self {
            Message::Text(t) => Outgoing::Text(t),
            Message::Binary(b) => Outgoing::Binary(b),
        }
    }
}

/// What [`WebSocket::recv`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recv {
    /// The next text or binary message (pings and pongs are the server's).
    Message(Message),
    /// No complete message now; `on_event` with readable follows.
    Pending,
    /// The connection ended: the client's close code and reason (1006 when no close frame came).
    Closed {
        /// The close code.
        code: u16,
        /// The close reason (lossy UTF-8).
        reason: String,
    },
    /// The handle is closed, or the host refused.
    Failed(AbiError),
}

/// A message to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outgoing<'a> {
    /// Text.
    Text(&'a str),
    /// Binary.
    Binary(&'a [u8]),
}

/// What [`WebSocket::send`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Queued; the server sends it in order.
    Queued,
    /// Not taken: earlier output still waits for the client. Send it again after `on_event`
    /// with writable (a broadcast may instead drop it for this slow client).
    WouldBlock,
    /// Too large ([`AbiError::TooLarge`]), closed ([`AbiError::ClientGone`]), ...
    Failed(AbiError),
}

/// One WebSocket connection. Cheap to clone (an `Arc` over the handle) and `Send + Sync`; calls
/// from many threads are serialised per connection and never wait for the client. The handle is
/// released when [`WebSocket::close`] is called, or when the connection ended and the last clone
/// is dropped; dropping the last clone of a live one closes it with 1000.
#[derive(Clone)]
pub struct WebSocket(Arc<Handle>);

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("closed", &self.0.is_closed())
            .finish()
    }
}

impl WebSocket {
    fn new(handle: Handle) -> WebSocket {
        WebSocket(Arc::new(handle))
    }

    /// The next message, without waiting.
    pub fn recv(&self) -> Recv {
        let Some(recv) = self.0.host.websocket_recv else {
            return Recv::Failed(AbiError::State);
        };
        let got = self.0.with(|raw| {
            let mut msg = WsMessage::EMPTY;
            // SAFETY: `raw` is the live handle (the lock keeps it so during the call, and keeps
            // another call from invalidating the message before it is copied below).
            let rc = unsafe { recv(raw.as_ptr(), &mut msg) };
            // SAFETY: on 1 and 0 the server filled `msg`, whose bytes stay valid until the next
            // call on this handle, which the lock keeps out until this closure returns.
            let data = || unsafe { msg.data.as_slice() }.to_vec();
            match rc {
                1 if msg.kind == WS_MSG_TEXT => match String::from_utf8(data()) {
                    Ok(text) => Recv::Message(Message::Text(text)),
                    Err(_) => Recv::Failed(AbiError::Invalid),
                },
                1 => Recv::Message(Message::Binary(data())),
                0 if msg.kind == WS_MSG_CLOSE => Recv::Closed {
                    code: msg.close_code,
                    reason: String::from_utf8_lossy(&data()).into_owned(),
                },
                0 => Recv::Closed {
                    code: 1006,
                    reason: String::new(),
                },
                WS_PENDING => Recv::Pending,
                err => Recv::Failed(AbiError::check(err).err().unwrap_or(AbiError::Other(err))),
            }
        });
        got.unwrap_or_else(Recv::Failed)
    }

    /// Sends one message, without waiting; see [`Sent`].
    pub fn send(&self, msg: Outgoing<'_>) -> Sent {
        let Some(send) = self.0.host.websocket_send else {
            return Sent::Failed(AbiError::State);
        };
        let (kind, bytes) = match msg {
            Outgoing::Text(t) => (WS_MSG_TEXT, t.as_bytes()),
            Outgoing::Binary(b) => (WS_MSG_BINARY, b),
        };
        // SAFETY: `raw` is the live handle; `bytes` is valid during the call (the server copies).
        let sent = self
            .0
            .with(|raw| unsafe { send(raw.as_ptr(), kind, bytes.as_ptr(), bytes.len()) });
        match sent {
            Ok(WS_OK) => Sent::Queued,
            Ok(WS_PENDING) => Sent::WouldBlock,
            Ok(err) => Sent::Failed(AbiError::check(err).err().unwrap_or(AbiError::Other(err))),
            Err(err) => Sent::Failed(err),
        }
    }

    /// [`WebSocket::send`] of a text message.
    pub fn send_text(&self, text: &str) -> Sent {
        self.send(Outgoing::Text(text))
    }

    /// [`WebSocket::send`] of a binary message.
    pub fn send_binary(&self, bytes: &[u8]) -> Sent {
        self.send(Outgoing::Binary(bytes))
    }

    /// Starts the closing handshake with `code` (1000 normal; 0 none) and `reason` (at most 123
    /// bytes, cut at a UTF-8 boundary); the server finishes it. Later calls on any clone fail
    /// with [`AbiError::ClientGone`]. A second close does nothing.
    pub fn close(&self, code: u16, reason: &str) {
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        self.0.close(code, &reason.as_bytes()[..end]);
    }

    /// Whether [`WebSocket::close`] was called (or the connection released).
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// `websocket_accept` on `io` with `handler`.
///
/// # Safety
/// `io` must be a request handle `host` answers on this thread now (during `call` or `next`).
unsafe fn accept(
    host: &WsHost,
    io: *mut c_void,
    protocol: &str,
    headers: &[(&str, &str)],
    handler: impl WebSocketHandler,
    logger: Logger,
) -> Result<WebSocket, AbiError> {
    let accept = host.websocket_accept.ok_or(AbiError::State)?;
    if !host.has_upgrades() {
        return Err(AbiError::State);
    }
    let headers = headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
    with_pairs(headers, |pairs| {
        take_over(
            host,
            Kind::WebSocket,
            handler,
            logger,
            WebSocket::new,
            |raw_handler, out| {
                // SAFETY: the caller's contract for `io`; `protocol`, `pairs` and `raw_handler`
                // are valid during the call (the server copies them); `out` is writable.
                unsafe {
                    accept(
                        io,
                        WsBytes::from_slice(protocol.as_bytes()),
                        pairs.as_ptr(),
                        pairs.len(),
                        0,
                        raw_handler,
                        out,
                    )
                }
            },
        )
    })
}

impl Request<'_> {
    /// Whether this request is a WebSocket opening handshake the server can accept
    /// (`WS_REQ_WEBSOCKET`, ABI 1.2; never set by an older server).
    pub fn is_websocket(&self) -> bool {
        self.flags() & WS_REQ_WEBSOCKET != 0
    }

    /// Accepts the WebSocket now (the server writes the 101): for an app that wants the handle
    /// during `call` (to register it in a broadcast, say). Return
    /// [`crate::Response::started`] with an empty body afterwards. `protocol` (may be empty) must
    /// be one the client offered in `Sec-WebSocket-Protocol`.
    pub fn websocket_accept(
        &mut self,
        protocol: &str,
        headers: &[(&str, &str)],
        handler: impl WebSocketHandler,
    ) -> Result<WebSocket, AbiError> {
        let host = self.host().ok_or(AbiError::State)?;
        // SAFETY: `io` is this request's handle, during `call` on this thread.
        unsafe {
            accept(
                host,
                self.as_raw().io,
                protocol,
                headers,
                handler,
                self.logger(),
            )
        }
    }
}

impl BodyIo<'_> {
    /// [`Request::websocket_accept`] from a deferred body's `next` (answer [`crate::Next::End`]
    /// afterwards).
    pub fn websocket_accept(
        &mut self,
        protocol: &str,
        handler: impl WebSocketHandler,
    ) -> Result<WebSocket, AbiError> {
        let (host, io, logger) = self.parts();
        // SAFETY: `io` is the running request's handle on this thread (BodyIo's contract).
        unsafe { accept(host, io, protocol, &[], handler, logger) }
    }
}
