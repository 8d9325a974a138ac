//! The byte stream under a connection: its socket, with a TLS session layered on it on a TLS
//! listener. Everything the connection reads or writes goes through [`Transport`], which picks
//! the layer (one branch per call; the plain path is otherwise the socket's own), so the rest
//! of `conn` never asks which one it has. A PROXY header comes before either: while the
//! connection waits for one (`Phase::ProxyHeader`) it reads the raw socket
//! ([`Transport::read_raw_append`]), and whatever followed the header is handed to the TLS
//! session ([`Transport::take_early_records`]).
//!
//! The statistics' byte counts are taken under this boundary: a plain connection's by
//! `socket_io` (every call this file makes for one), a TLS session's by the session, as the
//! bytes it puts on and takes off the wire (HTTP/2 shares the session), and a `--static` file
//! sent with `sendfile` by `static_files::body`.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use crate::server::socket_io::{
    read_append, read_nonblocking, read_with_timeout, write_all_with_timeout, write_nonblocking,
    write_now,
};
use crate::static_files::{FileBody, Sent};
use crate::sys::socket::Stream;
use crate::tls::{ClientCert, TlsSession};

/// A connection's socket and the layers on it.
pub(crate) struct Transport {
    stream: Stream,
    /// The TLS state of a connection to a TLS listener (boxed: a plain one pays a pointer).
    tls: Option<Box<TlsSession>>,
    /// The last read found the socket empty: with edge-triggered polling the connection may be
    /// parked without reading again.
    pub(super) drained: bool,
}

impl Drop for Transport {
    /// However the connection ends, a TLS one says so first (close_notify, `tls::session`).
    fn drop(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.close(&mut self.stream);
        }
    }
}

impl Transport {
    pub(super) fn new(stream: Stream) -> Transport {
        Transport {
            stream,
            tls: None,
            drained: false,
        }
    }

    /// Speak TLS from now on (before the first read).
    pub(super) fn set_tls(&mut self, session: TlsSession) {
        self.tls = Some(Box::new(session));
    }

    pub(super) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The TLS client's certificate (`None`: not TLS, or before the handshake completed).
    pub(super) fn client_cert(&self) -> Option<&ClientCert> {
        self.tls.as_ref()?.client_cert()
    }

    /// The socket itself.
    #[cfg(test)]
    pub(super) fn stream(&self) -> &Stream {
        &self.stream
    }

    pub(super) fn stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }

    /// A TLS client's end (its close_notify) came with the bytes just read: no new edge will
    /// announce it, so the next read must look for it instead of parking.
    pub(super) fn tls_ended(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.ended())
    }

    /// A TLS client sent close_notify: nothing more will arrive, but it may still read.
    pub(super) fn tls_half_closed(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.half_closed())
    }

    /// One non-blocking read of up to `max` bytes (decrypted, on TLS) appended to `buf`; a short
    /// read found nothing more to read.
    pub(super) fn read_append(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        match &mut self.tls {
            Some(tls) => tls.read_append(&mut self.stream, buf, max),
            None => read_append(&self.stream, buf, max),
        }
    }

    /// [`Transport::read_append`] from the socket itself, under any TLS (a PROXY header).
    pub(super) fn read_raw_append(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        read_append(&self.stream, buf, max)
    }

    /// Bytes read from the raw socket after a PROXY header start the TLS handshake.
    pub(super) fn take_early_records(&mut self, early: &[u8]) -> io::Result<()> {
        match &mut self.tls {
            Some(tls) => tls.take_early_records(&mut self.stream, early),
            None => Ok(()),
        }
    }

    /// Reads some bytes into `out`, waiting up to `timeout` for them. `Ok(0)`: end of stream.
    pub(super) fn read_with_timeout(
        &mut self,
        out: &mut [u8],
        timeout: Duration,
    ) -> io::Result<usize> {
        match &mut self.tls {
            None => read_with_timeout(&mut self.stream, out, timeout),
            Some(tls) => tls.read_with_timeout(&mut self.stream, out, timeout),
        }
    }

    /// One read into `out` without waiting. `Ok(0)`: end of stream; `WouldBlock`: nothing now.
    pub(super) fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            Some(tls) => tls.read_into(&mut self.stream, out),
            None => read_nonblocking(&mut self.stream, out),
        }
    }

    /// Writes every part, waiting up to `timeout` each time the socket is full. With
    /// `more_follows`, plain TCP holds the last segment back for what comes next (`MSG_MORE`).
    pub(super) fn write_all(
        &mut self,
        parts: &[&[u8]],
        timeout: Duration,
        more_follows: bool,
    ) -> io::Result<()> {
        match &mut self.tls {
            None if more_follows => {
                write_all_with_timeout(&mut self.stream.more_follows(), parts, timeout)
            }
            None => write_all_with_timeout(&mut self.stream, parts, timeout),
            Some(tls) => tls.write_all(&mut self.stream, parts, timeout),
        }
    }

    /// Ends the plain stream's output after its last bytes (the FIN rides in their segment);
    /// nothing on TLS, whose close_notify is sent on drop.
    pub(super) fn shutdown_write(&self) -> io::Result<()> {
        match &self.tls {
            None => self.stream.shutdown_write(),
            Some(_) => Ok(()),
        }
    }

    /// Writes as much of `parts` as the socket (or rustls's bounded buffer) takes now, without
    /// waiting; returns how many bytes that was.
    pub(super) fn write_nonblocking(&mut self, parts: &[&[u8]]) -> io::Result<usize> {
        match &mut self.tls {
            None => write_nonblocking(&mut self.stream, parts),
            Some(tls) => tls.write_nonblocking(&mut self.stream, parts),
        }
    }

    /// Sends what a layer holds encrypted, as far as the socket takes it now; true once none is
    /// left.
    pub(super) fn flush_nonblocking(&mut self) -> io::Result<bool> {
        match &mut self.tls {
            Some(tls) => tls.flush_nonblocking(&mut self.stream),
            None => Ok(true),
        }
    }

    /// A layer holds bytes for the socket (rustls's encrypted records).
    pub(super) fn has_unsent(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.has_unsent())
    }

    /// Sends `bytes` as far as the socket takes them now, without waiting: the last words to a
    /// connection being given up on. Nothing is sent before a TLS handshake completed.
    pub(super) fn send_now(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.tls {
            None => write_now(&mut self.stream, bytes),
            Some(tls) if tls.is_handshaking() => Ok(()),
            Some(tls) => tls.write_now(&mut self.stream, bytes),
        }
    }

    /// Sends a `--static` file body as far as the socket takes it now.
    pub(super) fn send_file(&mut self, body: &mut FileBody) -> io::Result<Sent> {
        body.send(&mut self.stream, self.tls.as_deref_mut())
    }

    /// The socket (a duplicate of its descriptor: this transport closes its own when dropped)
    /// and the TLS session, for a new owner (`server::h2`).
    pub(super) fn hand_over(&mut self) -> io::Result<(Stream, Option<Box<TlsSession>>)> {
        let fd = self.stream.as_fd().try_clone_to_owned()?;
        Ok((Stream::from(fd), self.tls.take()))
    }

    /// TCP keep-alive probes after `idle` without traffic, then every third of it: how a raw
    /// upgraded stream, which the server never pings, finds a peer that vanished.
    pub(super) fn set_keepalive(&self, idle: Duration) -> io::Result<()> {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval((idle / 3).max(Duration::from_secs(1)));
        socket2::SockRef::from(&self.stream).set_tcp_keepalive(&keepalive)
    }
}
