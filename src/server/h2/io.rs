//! An HTTP/2 connection's byte stream on the HTTP/2 thread: the socket the event loop handed
//! over, watched by tokio's reactor (`AsyncFd`), read and written through the same
//! `TlsSession` the HTTP/1.1 path used (its handshake already done), after the bytes the serving
//! thread had read before it recognised the preface. What `h2` writes is held until its flush,
//! and a flush first lets the thread's other ready connections take their turn, so the thread's
//! writes go out together ([`H2Io::poll_flush`]).

use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::calm::FrameWatch;
use crate::sys::reactor::{self, Watched};
use crate::sys::socket::Stream;
use crate::tls::TlsSession;

pub(super) struct H2Io {
    fd: AsyncFd<Watched>,
    tls: Option<Box<TlsSession>>,
    /// Input read before the hand-over, returned first.
    early: Vec<u8>,
    early_at: usize,
    /// Bytes on their way into a `ReadBuf`: decrypted (TLS reads append to a `Vec`), or read
    /// from the socket.
    plain: Vec<u8>,
    /// rustls may hold decrypted bytes no edge of the socket will announce: the last TLS read
    /// filled the `ReadBuf` (a shorter one found the socket empty), or none was made yet.
    decrypted_left: bool,
    /// What `h2` wrote since its last flush, sent at the flush: one batch of frames makes as few
    /// writes (and TLS records) as it can, since `h2` writes frame by frame.
    pending: Vec<u8>,
    /// This flush has already let the thread's other ready connections take their turn
    /// ([`H2Io::poll_flush`]).
    flush_yielded: bool,
    /// Bytes read since this connection's task last yielded (`READ_BUDGET`).
    read_this_turn: usize,
    /// The frames read, for a control-frame flood.
    watch: FrameWatch,
}

/// What one connection may read per turn of its task before it yields. `h2` reads and handles
/// frames for as long as its socket has any: a client that floods cheap frames (PING, SETTINGS)
/// and reads every answer would otherwise keep the HTTP/2 thread, and every other connection
/// on it, waiting for seconds. One full DATA frame (16 KiB) still goes in one turn.
const READ_BUDGET: usize = 16 * 1024 + 9;

/// Plaintext held for a flush beyond this is flushed first.
const PENDING_LIMIT: usize = 64 * 1024;

/// A flushed `pending` larger than this is given back, so that a connection that once sent a
/// large response does not hold up to `PENDING_LIMIT` and a frame while it idles (300 idle h2c
/// connections after one 1 MiB response each held 10 MB more than without the buffer); the
/// small writes of a busy connection (a few hundred bytes per gRPC call) keep theirs.
const PENDING_KEPT: usize = 16 * 1024;

impl H2Io {
    /// Must run inside the HTTP/2 thread's runtime (it registers the socket with its reactor).
    /// `flooded` is set when the client sends too many control frames (`calm.rs`); then nothing
    /// more is read.
    pub(super) fn new(
        stream: Stream,
        tls: Option<Box<TlsSession>>,
        early: Vec<u8>,
        flooded: Arc<AtomicBool>,
        limits: &super::Limits,
    ) -> io::Result<H2Io> {
        let fd = reactor::watch(stream)?;
        Ok(H2Io {
            fd,
            tls,
            early,
            early_at: 0,
            plain: Vec::new(),
            decrypted_left: true,
            pending: Vec::new(),
            flush_yielded: false,
            read_this_turn: 0,
            watch: FrameWatch::new(flooded, limits.max_control_frames),
        })
    }
}

/// One read of at most `room` bytes that does not wait: `WouldBlock` when nothing is there,
/// else whether the socket was left empty (its last read came back short).
fn read_now(
    stream: &mut Stream,
    tls: &mut Option<Box<TlsSession>>,
    plain: &mut Vec<u8>,
    buf: &mut ReadBuf<'_>,
    room: usize,
) -> io::Result<bool> {
    match tls {
        None => {
            // Read into `plain` (zeroed once), not into `buf`: `h2` hands an uninitialised
            // buffer each time, and initialising it zeroed 16 KiB per read to take a few hundred
            // bytes.
            if plain.len() < READ_BUDGET {
                plain.resize(READ_BUDGET, 0);
            }
            let n = stream.read(&mut plain[..room])?;
            crate::stats::bytes_in(n);
            buf.put_slice(&plain[..n]);
            Ok(n < room)
        }
        Some(tls) => {
            plain.clear();
            tls.read_append(stream, plain, room)?;
            buf.put_slice(plain);
            Ok(tls.socket_drained())
        }
    }
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

/// Sends the plaintext `h2` wrote since the last flush, as far as the socket takes it now:
/// `WouldBlock` while some of it waits for room.
fn write_now(stream: &mut Stream, pending: &mut Vec<u8>) -> io::Result<()> {
    let taken = crate::server::socket_io::write_nonblocking(stream, &[pending])?;
    pending.drain(..taken);
    if !pending.is_empty() {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok(())
}

impl Drop for H2Io {
    /// What `h2` wrote last (its GOAWAY, say) still goes out, best effort; a TLS connection then
    /// ends with close_notify, as on the HTTP/1.1 path.
    fn drop(&mut self) {
        let stream = &mut self.fd.get_mut().stream();
        let sent = match &mut self.tls {
            Some(tls) => tls.write_nonblocking(stream, &[&self.pending]).map(drop),
            None => write_now(stream, &mut self.pending),
        };
        if let Err(e) = sent {
            log::debug!("HTTP/2: last frames not sent: {e}");
        }
        if let Some(tls) = &mut self.tls {
            tls.close(stream);
        }
    }
}

impl H2Io {
    /// `poll_read` within this turn's budget: at most `room` bytes.
    fn read_within(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        room: usize,
    ) -> Poll<io::Result<()>> {
        let H2Io {
            fd,
            tls,
            early,
            early_at,
            plain,
            decrypted_left,
            ..
        } = self;
        if *early_at < early.len() {
            let rest = &early[*early_at..];
            let n = rest.len().min(room);
            buf.put_slice(&rest[..n]);
            *early_at += n;
            if *early_at == early.len() {
                *early = Vec::new();
                *early_at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if tls.is_some() && std::mem::take(decrypted_left) {
            match read_now(fd.get_mut().stream(), tls, plain, buf, room) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => {
                    *decrypted_left = plain.len() == room;
                    return Poll::Ready(done.map(drop));
                }
            }
        }
        loop {
            let mut guard = ready!(fd.poll_read_ready_mut(cx))?;
            // `try_io` clears the readiness only if the read found nothing, and a short read
            // clears it too (as tokio's own streams do): the next read would find the socket
            // empty. Neither loses an edge that came meanwhile.
            match guard.try_io(|inner| read_now(inner.get_mut().stream(), tls, plain, buf, room)) {
                Ok(done) => {
                    *decrypted_left = tls.is_some() && plain.len() == room;
                    if matches!(done, Ok(true)) && !*decrypted_left {
                        guard.clear_ready();
                    }
                    return Poll::Ready(done.map(drop));
                }
                Err(_would_block) => {}
            }
        }
    }
}

impl AsyncRead for H2Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read_this_turn >= READ_BUDGET || this.watch.read(&[]) {
            // Yield until the reactor has been polled: woken at once, the task would go round
            // with the others that are ready, and a connection whose bytes just came would wait
            // for the reactor's turn (every 61 tasks polled).
            this.read_this_turn = 0;
            let _ = std::pin::pin!(tokio::task::yield_now()).poll(cx);
            return Poll::Pending;
        }
        let room = buf.remaining().min(READ_BUDGET - this.read_this_turn);
        let before = buf.filled().len();
        let read = this.read_within(cx, buf, room);
        match &read {
            Poll::Ready(Ok(())) => {
                this.read_this_turn += buf.filled().len() - before;
                this.watch.read(&buf.filled()[before..]);
            }
            // The task waits for the socket: a new turn begins when it is woken.
            _ => this.read_this_turn = 0,
        }
        read
    }
}

impl AsyncWrite for H2Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.len() >= PENDING_LIMIT {
            ready!(self.as_mut().poll_flush(cx))?;
        }
        self.pending.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    /// Sends what `h2` wrote, but first lets every other connection that is ready on this thread
    /// take its turn (the task wakes itself and goes to the back of the run queue), so that the
    /// thread's writes go out together after its reads and its apps' calls. Written one
    /// connection at a time, each write found the client (one thread reading many connections,
    /// as h2load, a proxy or a gRPC client's channel do) asleep again and paid for waking it:
    /// under `h2load -c 50 -m 10` the client slept 89 times per 1,000 gRPC calls here against 11
    /// with tonic, whose connection tasks write after their streams' tasks ran, and those
    /// wake-ups were 13 % of this thread's time (`bench/RESULTS.md`, session 13).
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let H2Io {
            fd,
            tls,
            pending,
            flush_yielded,
            ..
        } = self.get_mut();
        let unsent_tls = tls.as_ref().is_some_and(|tls| tls.has_unsent());
        if pending.is_empty() && !unsent_tls {
            // `h2` flushes on every turn of its connection, mostly with nothing written since
            // the last: asking the reactor for write readiness then costs more than the turn.
            return Poll::Ready(Ok(()));
        }
        if !std::mem::replace(flush_yielded, true) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        loop {
            let mut guard = ready!(fd.poll_write_ready_mut(cx))?;
            let flushed = guard.try_io(|inner| {
                let stream = inner.get_mut().stream();
                match tls {
                    Some(tls) => flush_now(stream, tls, pending),
                    None => write_now(stream, pending),
                }
            });
            if let Ok(done) = flushed {
                *flush_yielded = false;
                if pending.is_empty() && pending.capacity() > PENDING_KEPT {
                    *pending = Vec::new();
                }
                return Poll::Ready(done);
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
