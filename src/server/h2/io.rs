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
}

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

/// One write that does not wait: how many bytes were taken, or `WouldBlock`.
fn write_now(
    stream: &mut Stream,
    tls: &mut Option<Box<TlsSession>>,
    data: &[u8],
) -> io::Result<usize> {
    match tls {
        None => stream.write(data).inspect(|&n| crate::stats::bytes_out(n)),
        Some(tls) => match tls.write_nonblocking(stream, &[data])? {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        },
    }
}

/// Sends the encrypted bytes rustls holds without waiting; `WouldBlock` while some remain.
fn flush_now(stream: &mut Stream, tls: &mut Option<Box<TlsSession>>) -> io::Result<()> {
    match tls {
        Some(tls) => match tls.flush_nonblocking(stream)? {
            true => Ok(()),
            false => Err(io::ErrorKind::WouldBlock.into()),
        },
        None => Ok(()),
    }
}

impl Drop for H2Io {
    /// A TLS connection ends with close_notify, as on the HTTP/1.1 path.
    fn drop(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.close(&mut self.fd.get_mut().0);
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
        if tls.is_some() {
            // rustls may hold decrypted bytes that no new edge of the socket will announce.
            match read_now(&mut fd.get_mut().0, tls, plain, buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        }
        loop {
            let mut guard = ready!(fd.poll_read_ready_mut(cx))?;
            // `try_io` clears the readiness only if the read found nothing, without losing an
            // edge that came meanwhile.
            match guard.try_io(|inner| read_now(&mut inner.get_mut().0, tls, plain, buf)) {
                Ok(done) => return Poll::Ready(done),
                Err(_would_block) => {}
            }
        }
    }
}

impl AsyncWrite for H2Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let H2Io { fd, tls, .. } = self.get_mut();
        loop {
            let mut guard = ready!(fd.poll_write_ready_mut(cx))?;
            match guard.try_io(|inner| write_now(&mut inner.get_mut().0, tls, data)) {
                Ok(done) => return Poll::Ready(done),
                Err(_would_block) => {}
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let H2Io { fd, tls, .. } = self.get_mut();
        if tls.is_none() {
            return Poll::Ready(Ok(()));
        }
        loop {
            let mut guard = ready!(fd.poll_write_ready_mut(cx))?;
            match guard.try_io(|inner| flush_now(&mut inner.get_mut().0, tls)) {
                Ok(done) => return Poll::Ready(done),
                Err(_would_block) => {}
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
