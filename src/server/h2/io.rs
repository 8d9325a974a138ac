//! An HTTP/2 connection's byte stream on the HTTP/2 thread: the socket the event loop handed
//! over, watched by tokio's reactor (`AsyncFd`), read and written through the same
//! `TlsSession` the HTTP/1.1 path used (its handshake already done), after the bytes the serving
//! thread had read before it recognised the preface.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::sys::socket::Stream;
use crate::tls::TlsSession;

/// What `AsyncFd` watches.
struct Socket(Stream);

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub(super) struct H2Io {
    fd: AsyncFd<Socket>,
    tls: Option<Box<TlsSession>>,
    /// Input read before the hand-over, returned first.
    early: Vec<u8>,
    early_at: usize,
    /// Decrypted bytes on their way into a `ReadBuf` (TLS reads append to a `Vec`).
    plain: Vec<u8>,
    /// rustls may hold decrypted bytes no edge of the socket will announce: the last TLS read
    /// filled the `ReadBuf` (a shorter one found the socket empty), or none was made yet.
    decrypted_left: bool,
    /// TLS: what `h2` wrote since its last flush, encrypted at the flush, so one batch of frames
    /// makes as few records and writes as it can (`h2` writes frame by frame).
    pending: Vec<u8>,
}

/// Plaintext held for a flush beyond this is flushed first.
const PENDING_LIMIT: usize = 64 * 1024;

impl H2Io {
    /// Must run inside the HTTP/2 thread's runtime (it registers the socket with its reactor).
    pub(super) fn new(
        stream: Stream,
        tls: Option<Box<TlsSession>>,
        early: Vec<u8>,
    ) -> io::Result<H2Io> {
        // The one `unsafe` of `server` (otherwise reached through `crate::sys` only): tokio's
        // registration of a descriptor it does not own.
        #[allow(unsafe_code)]
        // SAFETY: `Socket` owns the descriptor (a `Stream` is an `OwnedFd`), so it stays open and
        // the same for as long as the `AsyncFd` that owns the `Socket`, and `as_raw_fd` always
        // returns it.
        let fd = unsafe { AsyncFd::register(Socket(stream)) }.map_err(io::Error::from)?;
        Ok(H2Io {
            fd,
            tls,
            early,
            early_at: 0,
            plain: Vec::new(),
            decrypted_left: true,
            pending: Vec::new(),
        })
    }
}

/// One read that does not wait: `WouldBlock` when nothing is there.
fn read_now(
    stream: &mut Stream,
    tls: &mut Option<Box<TlsSession>>,
    plain: &mut Vec<u8>,
    buf: &mut ReadBuf<'_>,
) -> io::Result<()> {
    match tls {
        None => {
            let n = stream.read(buf.initialize_unfilled())?;
            crate::stats::bytes_in(n);
            buf.advance(n);
        }
        Some(tls) => {
            plain.clear();
            tls.read_append(stream, plain, buf.remaining())?;
            buf.put_slice(plain);
        }
    }
    Ok(())
}

/// Encrypts and sends the plaintext `h2` wrote since the last flush, as far as the socket takes
/// it now: `WouldBlock` while some of it (or of the records) waits for room.
fn flush_now(stream: &mut Stream, tls: &mut TlsSession, pending: &mut Vec<u8>) -> io::Result<()> {
    let taken = tls.write_nonblocking(stream, &[pending])?;
    pending.drain(..taken);
    if !pending.is_empty() || !tls.flush_nonblocking(stream)? {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok(())
}

impl Drop for H2Io {
    /// A TLS connection ends with close_notify, as on the HTTP/1.1 path (after what `h2` wrote
    /// last, its GOAWAY, best effort).
    fn drop(&mut self) {
        if let Some(tls) = &mut self.tls {
            let stream = &mut self.fd.get_mut().0;
            if let Err(e) = tls.write_nonblocking(stream, &[&self.pending]) {
                log::debug!("HTTP/2 over TLS: last frames not sent: {e}");
            }
            tls.close(stream);
        }
    }
}

impl AsyncRead for H2Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let H2Io {
            fd,
            tls,
            early,
            early_at,
            plain,
            decrypted_left,
            ..
        } = self.get_mut();
        if *early_at < early.len() {
            let rest = &early[*early_at..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            *early_at += n;
            if *early_at == early.len() {
                *early = Vec::new();
                *early_at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if tls.is_some() && std::mem::take(decrypted_left) {
            let room = buf.remaining();
            match read_now(&mut fd.get_mut().0, tls, plain, buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => {
                    *decrypted_left = plain.len() == room;
                    return Poll::Ready(done);
                }
            }
        }
        loop {
            let mut guard = ready!(fd.poll_read_ready_mut(cx))?;
            // `try_io` clears the readiness only if the read found nothing, without losing an
            // edge that came meanwhile.
            let room = buf.remaining();
            match guard.try_io(|inner| read_now(&mut inner.get_mut().0, tls, plain, buf)) {
                Ok(done) => {
                    *decrypted_left = tls.is_some() && plain.len() == room;
                    return Poll::Ready(done);
                }
                Err(_would_block) => {}
            }
        }
    }
}

impl AsyncWrite for H2Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.tls.is_some() {
            if self.pending.len() >= PENDING_LIMIT {
                ready!(self.as_mut().poll_flush(cx))?;
            }
            self.pending.extend_from_slice(data);
            return Poll::Ready(Ok(data.len()));
        }
        let fd = &mut self.get_mut().fd;
        loop {
            let mut guard = ready!(fd.poll_write_ready_mut(cx))?;
            let written = guard.try_io(|inner| {
                let n = inner.get_mut().0.write(data)?;
                crate::stats::bytes_out(n);
                Ok(n)
            });
            if let Ok(done) = written {
                return Poll::Ready(done);
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let H2Io {
            fd, tls, pending, ..
        } = self.get_mut();
        let Some(tls) = tls else {
            return Poll::Ready(Ok(()));
        };
        loop {
            let mut guard = ready!(fd.poll_write_ready_mut(cx))?;
            match guard.try_io(|inner| flush_now(&mut inner.get_mut().0, tls, pending)) {
                Ok(done) => return Poll::Ready(done),
                Err(_would_block) => {}
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
