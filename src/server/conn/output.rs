//! A connection's output: responses written through its transport, and what has to wait for
//! the client — a deferred request's bytes the socket had no room for (`unsent`, sent in order
//! before anything else once the client reads; see `server::deferred`) and the rest of a
//! `--static` file body too large to hold (`file`, sent from its file as the client reads,
//! before the next request on the connection is served). While either waits, the connection
//! parks watched for room to send.

use std::io;
use std::time::Duration;

use super::{Conn, Watch};
use crate::static_files::{FileBody, Sent};

/// Output waiting for the client to read.
#[derive(Default)]
pub(super) struct Output {
    /// Response bytes of a deferred request that the socket had no room for; empty otherwise.
    unsent: Vec<u8>,
    /// The rest of a `--static` file being sent (`crate::static_files::FileBody`).
    file: Option<Box<FileBody>>,
}

impl Conn {
    /// Writes every part, waiting up to `timeout` each time the socket is full (after what a
    /// deferred request left unsent, which goes first).
    #[inline]
    pub(crate) fn write_all(&mut self, parts: &[&[u8]], timeout: Duration) -> io::Result<()> {
        if !self.output.unsent.is_empty() {
            let unsent = std::mem::take(&mut self.output.unsent);
            self.transport.write_all(&[&unsent], timeout, false)?;
        }
        // The head of a file body (`set_file_body`) goes with `MSG_MORE`: it shares its
        // segments with the body's first bytes instead of leaving alone, which would cost the
        // client a wake-up and a read per file.
        let more_follows = self.output.file.is_some();
        self.transport.write_all(parts, timeout, more_follows)
    }

    /// Writes the last bytes this connection carries: the caller closes it right after. On
    /// plain TCP they go with `MSG_MORE` and are followed by `shutdown(SHUT_WR)`, so the FIN
    /// leaves in their last segment instead of a segment of its own: one packet fewer, to send
    /// and to receive, per `Connection: close` exchange, for one cheap system call. The
    /// shutdown, not the close, pushes them out: a close with input unread (an unread body, a
    /// request pipelined behind the last one) resets the connection and would drop output still
    /// held back, where now the reset only follows it, as before.
    pub(crate) fn write_last(&mut self, parts: &[&[u8]], timeout: Duration) -> io::Result<()> {
        if self.transport.is_tls() || self.output.file.is_some() || !self.output.unsent.is_empty() {
            return self.write_all(parts, timeout);
        }
        self.transport.write_all(parts, timeout, true)?;
        if let Err(e) = self.transport.shutdown_write() {
            // The client is gone: the close that follows ends the connection all the same.
            log::debug!("{}: shutdown: {e}", self.peer);
        }
        Ok(())
    }

    /// Sends `bytes` as far as the socket takes them now, without waiting: the last words to a
    /// connection being given up on. Nothing is sent before a TLS handshake completed.
    pub(crate) fn send_now(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.transport.send_now(bytes)
    }

    /// Writes what the socket takes now and keeps the rest, in order, for [`Conn::flush_unsent`]
    /// (a deferred request's output: it waits for the client on epoll, not on a thread). On TLS
    /// what rustls's buffer takes is encrypted at once and the plaintext beyond it is kept.
    pub(crate) fn write_or_keep(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let mut skip = if self.output.unsent.is_empty() {
            self.transport.write_nonblocking(parts)?
        } else {
            0
        };
        for part in parts {
            let kept = part.get(skip.min(part.len())..).unwrap_or_default();
            skip = skip.saturating_sub(part.len());
            self.output.unsent.extend_from_slice(kept);
        }
        Ok(())
    }

    /// Sends what [`Conn::write_or_keep`] kept, as far as the socket takes it now; true once
    /// nothing is left.
    pub(crate) fn flush_unsent(&mut self) -> io::Result<bool> {
        if !self.transport.flush_nonblocking()? {
            return Ok(false);
        }
        if self.output.unsent.is_empty() {
            return Ok(true);
        }
        let written = self.transport.write_nonblocking(&[&self.output.unsent])?;
        self.output.unsent.drain(..written);
        if self.output.unsent.is_empty() {
            // The largest chunk's copy is not kept for the life of the connection.
            self.output.unsent = Vec::new();
        }
        Ok(!self.has_unsent())
    }

    /// Output waits for the client to read (on TLS, also encrypted bytes in rustls's buffer;
    /// or a file body).
    pub(crate) fn has_unsent(&self) -> bool {
        !self.output.unsent.is_empty() || self.output.file.is_some() || self.transport.has_unsent()
    }

    /// The body of a `--static` answer follows the held output: sent by `send_file_body`.
    pub(crate) fn set_file_body(&mut self, body: FileBody) {
        self.output.file = Some(Box::new(body));
    }

    /// A file body is being sent.
    pub(crate) fn sending_file(&self) -> bool {
        self.output.file.is_some()
    }

    /// Sends the file body as far as the socket takes it now (one turn, without waiting):
    /// `Some(close_after)` once it is all out, `None` while it waits for the client or for its
    /// next turn.
    pub(crate) fn send_file_body(&mut self) -> io::Result<Option<bool>> {
        let Some(body) = &mut self.output.file else {
            return Ok(Some(false));
        };
        // A deferred app's head (ABI 1.2 `send_file`) may wait here: it goes first.
        if !self.output.unsent.is_empty() {
            match self.transport.write_nonblocking(&[&self.output.unsent]) {
                Ok(n) => {
                    self.output.unsent.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if !self.output.unsent.is_empty() {
                return Ok(None);
            }
        }
        match self.transport.send_file(body)? {
            Sent::All => {
                let close_after = body.close_after();
                self.output.file = None;
                Ok(Some(close_after))
            }
            Sent::Full => Ok(None),
            Sent::Yield => {
                // The socket has room, so no edge will come: parking re-arms the registration,
                // which reports it again behind the events already waiting.
                if self.watch == Watch::InputAndOutput {
                    self.watch = Watch::Input;
                }
                Ok(None)
            }
        }
    }

    /// The client is given up on: what it did not read is dropped.
    pub(crate) fn drop_unsent(&mut self) {
        self.output.unsent = Vec::new();
    }

    /// An upgraded connection's write (ABI 1.2), never waiting: what earlier output left unsent
    /// goes first; returns how much of `data` the socket (or rustls's bounded buffer) took, 0
    /// when it has no room now.
    pub(crate) fn write_some(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.has_unsent() && !self.flush_unsent()? {
            return Ok(0);
        }
        self.transport.write_nonblocking(&[data])
    }
}
