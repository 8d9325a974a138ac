//! Blocking-with-deadline I/O on non-blocking sockets, for the serving threads.
//!
//! Sockets stay non-blocking for their whole life (the shared epoll instance needs that); a
//! thread that must wait — for body bytes the app asked for, or for room to send a response —
//! waits on that one socket (`sys::socket::wait_ready`), bounded by `--io-timeout`, so a client
//! that stops reading or sending cannot hold the thread forever.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use crate::sys::socket::{self, wait_ready, Ready};

/// Slices handed to one `writev`: enough for a head, a body and a chunk frame around it.
const MAX_WRITE_SLICES: usize = 8;

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
    let mut index = 0; // first part not fully written
    let mut offset = 0; // bytes of parts[index] already written
    while index < parts.len() {
        if parts[index].len() == offset {
            index += 1;
            offset = 0;
            continue;
        }
        let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
        let mut count = 0;
        for (i, part) in parts[index..].iter().enumerate().take(slices.len()) {
            let part = if i == 0 { &part[offset..] } else { part };
            if !part.is_empty() {
                slices[count] = IoSlice::new(part);
                count += 1;
            }
        }
        match stream
            .write_vectored(&slices[..count])
            .inspect(|&n| crate::stats::bytes_out(n))
        {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(mut n) => {
                while n > 0 {
                    let left = parts[index].len() - offset;
                    if n >= left {
                        n -= left;
                        index += 1;
                        offset = 0;
                    } else {
                        offset += n;
                        n = 0;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !wait_ready(stream.as_fd(), Ready::Writable, timeout)? {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client read nothing within --io-timeout",
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One non-blocking read of up to `max` bytes appended to `buf` (no zero-filling first).
pub(crate) fn read_append(stream: &impl AsFd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    socket::read_append(stream.as_fd(), buf, max).inspect(|&n| crate::stats::bytes_in(n))
}
