//! The byte streams tungstenite's context reads and writes: the connection's non-blocking
//! socket ([`Wire`]) and, before the socket is attached, the connection's early output
//! ([`Early`]); the context itself, made on first use; and how its errors read.

use std::io::{self, Read, Write};

use tungstenite::error::{CapacityError, Error, ProtocolError};
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};

use crate::server::conn::Conn;
use crate::server::upgraded::emptied_socket;
use crate::server::ws::boundary::FrameBoundary;

/// Bytes tungstenite reads per system call. Small: it is allocated per connection that has
/// read anything, and most WebSocket messages are small.
const READ_BUFFER: usize = 4 * 1024;

/// The socket as tungstenite's stream: reads and writes never wait. What tungstenite reads is
/// followed frame by frame (`seen`), so the session knows when the context holds nothing.
pub(super) struct Wire<'a> {
    pub(super) conn: &'a mut Conn,
    pub(super) seen: Option<&'a mut FrameBoundary>,
    /// The session's `input_drained` (reads only).
    pub(super) drained: Option<&'a mut bool>,
}

pub(super) fn wire(conn: &mut Conn) -> Wire<'_> {
    Wire {
        conn,
        seen: None,
        drained: None,
    }
}

impl Read for Wire<'_> {
    /// tungstenite reads until "would block", so every message would cost a second, empty read.
    /// As tokio does, a short read of plain TCP counts as having emptied the socket: the next
    /// one says "would block" without a system call until an epoll edge says input came
    /// (`WsSession::input_may_come`; the edge is taken before the read, so one that comes during
    /// it is kept for the next). Not under TLS, whose session may hold plaintext.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let from_socket = self.conn.input().is_empty();
        if from_socket && self.drained.as_deref().is_some_and(|drained| *drained) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let read = self.conn.read_into(buf);
        if let Some(drained) = self.drained.as_deref_mut() {
            *drained = emptied_socket(self.conn, from_socket, buf.len(), &read);
        }
        let n = read?;
        if let Some(seen) = self.seen.as_deref_mut() {
            seen.feed(&buf[..n]);
        }
        Ok(n)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.conn.write_some(buf)? {
            0 if !buf.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.conn.has_unsent() && !self.conn.flush_unsent()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(())
    }
}

/// The context in `slot`, made on first use.
pub(super) fn context(
    slot: &mut Option<Box<WebSocketContext>>,
    max: usize,
) -> &mut WebSocketContext {
    slot.get_or_insert_with(|| {
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0)
            // A backstop: the session keeps at most one message waiting (`Sent::Blocked`).
            .max_write_buffer_size(max.saturating_add(64 * 1024))
            .max_message_size(Some(max))
            .max_frame_size(Some(max))
            .accept_unmasked_frames(false);
        Box::new(WebSocketContext::new(Role::Server, Some(config)))
    })
}

/// Output queued before the socket is attached: frames appended to the connection's early
/// output (`upgraded.rs`), sent after the 101.
pub(super) struct Early<'a>(pub(super) &'a mut Vec<u8>);

impl Read for Early<'_> {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl Write for Early<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(super) fn would_block(e: &Error) -> bool {
    matches!(e, Error::Io(io) if io.kind() == io::ErrorKind::WouldBlock)
}

/// The close code RFC 6455 §7.4.1 gives a violation tungstenite reported; `None` when the
/// connection itself is gone (no close frame can be sent: 1006).
pub(super) fn close_code_for(e: &Error) -> Option<u16> {
    match e {
        Error::Utf8(_) => Some(1007),
        Error::Capacity(CapacityError::MessageTooLong { .. }) => Some(1009),
        Error::Capacity(_) => Some(1009),
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        Error::Protocol(_) => Some(1002),
        _ => None,
    }
}
