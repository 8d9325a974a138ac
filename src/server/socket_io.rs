//! A plain connection's socket I/O, for the serving threads (`conn::transport` calls it for a
//! connection without TLS): every byte it reads or writes is counted for the statistics here,
//! and only here (a TLS session counts its wire bytes itself).
//!
//! Sockets stay non-blocking for their whole life (the shared epoll instance needs that); a
//! thread that must wait — for body bytes the app asked for, or for room to send a response —
//! waits on that one socket (`sys::socket::wait_ready`), bounded by `--io-timeout`, so a client
//! that stops reading or sending cannot hold the thread forever.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use crate::sys::socket::{self, wait_ready, Ready};
use crate::write_parts::{slices_after, MAX_WRITE_SLICES};

/// Read some bytes, waiting up to `timeout` for them. `Ok(0)` is end of stream.
pub(crate) fn read_with_timeout<S: Read + AsFd>(
    stream: &mut S,
    buf: &mut [u8],
    timeout: Duration,
) -> io::Result<usize> {
    loop {
        match stream.read(buf).inspect(|&n| crate::stats::bytes_in(n)) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !wait_ready(stream.as_fd(), Ready::Readable, timeout)? {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client sent nothing within --io-timeout",
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Write every part with vectored writes, waiting up to `timeout` each time the socket is full.
pub(crate) fn write_all_with_timeout<S: Write + AsFd>(
    stream: &mut S,
    parts: &[&[u8]],
    timeout: Duration,
) -> io::Result<()> {
    let total: usize = parts.iter().map(|part| part.len()).sum();
    let mut written = 0;
    loop {
        written += write_from(stream, parts, written)?;
        if written >= total {
            return Ok(());
        }
        if !wait_ready(stream.as_fd(), Ready::Writable, timeout)? {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client read nothing within --io-timeout",
            ));
        }
    }
}

/// Writes as much of `parts` as the socket takes now, without waiting; returns how many bytes
/// that was (fewer than all of them when the socket is full).
pub(crate) fn write_nonblocking<S: Write>(stream: &mut S, parts: &[&[u8]]) -> io::Result<usize> {
    write_from(stream, parts, 0)
}

/// Writes `parts` after their first `skip` bytes as far as the socket takes them now; returns
/// how many bytes it took.
fn write_from<S: Write>(stream: &mut S, parts: &[&[u8]], skip: usize) -> io::Result<usize> {
    let mut written = 0;
    loop {
        let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
        let count = slices_after(parts, skip + written, &mut slices);
        if count == 0 {
            return Ok(written);
        }
        match stream
            .write_vectored(&slices[..count])
            .inspect(|&n| crate::stats::bytes_out(n))
        {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(written),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One read into `out` without waiting. `Ok(0)`: end of stream; `WouldBlock`: nothing now.
pub(crate) fn read_nonblocking<S: Read>(stream: &mut S, out: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(out) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            read => return read.inspect(|&n| crate::stats::bytes_in(n)),
        }
    }
}

/// Writes `bytes` as far as the socket takes them now, without waiting; an error if it did
/// not take them all.
pub(crate) fn write_now<S: Write>(stream: &mut S, bytes: &[u8]) -> io::Result<()> {
    stream
        .write_all(bytes)
        .inspect(|()| crate::stats::bytes_out(bytes.len()))
}

/// One non-blocking read of up to `max` bytes appended to `buf` (no zero-filling first).
pub(crate) fn read_append(stream: &impl AsFd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    socket::read_append(stream.as_fd(), buf, max).inspect(|&n| crate::stats::bytes_in(n))
}
