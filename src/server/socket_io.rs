//! Blocking-with-deadline I/O on non-blocking sockets, for the app threads.
//!
//! Sockets stay non-blocking for their whole life (the event loop needs that); an app thread that
//! must wait — for body bytes the app asked for, or for room to send a response — waits with
//! `poll(2)` on that one descriptor, bounded by `--timeout`, so a client that stops reading or
//! sending cannot hold the thread forever.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Wait until `fd` is readable (or writable) or `timeout` passes. `Ok(false)` on timeout.
fn wait(fd: &impl AsRawFd, writable: bool, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: if writable {
                libc::POLLOUT
            } else {
                libc::POLLIN
            },
            revents: 0,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let millis = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: pfd is a valid pollfd for the duration of the call and nfds is 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, millis) };
        match rc {
            0 => return Ok(false),
            rc if rc > 0 => return Ok(true),
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

/// Read some bytes, waiting up to `timeout` for them. `Ok(0)` is end of stream.
pub(crate) fn read_with_timeout<S: Read + AsRawFd>(
    stream: &mut S,
    buf: &mut [u8],
    timeout: Duration,
) -> io::Result<usize> {
    loop {
        match stream.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !wait(stream, false, timeout)? {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client sent nothing within --timeout",
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Write every part with vectored writes, waiting up to `timeout` each time the socket is full.
pub(crate) fn write_all_with_timeout<S: Write + AsRawFd>(
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
        let mut slices = [IoSlice::new(&[]); 8];
        let mut count = 0;
        for (i, part) in parts[index..].iter().enumerate().take(slices.len()) {
            let part = if i == 0 { &part[offset..] } else { part };
            if !part.is_empty() {
                slices[count] = IoSlice::new(part);
                count += 1;
            }
        }
        match stream.write_vectored(&slices[..count]) {
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
                if !wait(stream, true, timeout)? {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client read nothing within --timeout",
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One non-blocking `read(2)` of up to `max` bytes appended to `buf`, without zero-filling the
/// space first (a memset per read would cost as much as parsing a small request head).
pub(crate) fn read_append(fd: &impl AsRawFd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    buf.reserve(max);
    let spare = buf.spare_capacity_mut();
    let want = spare.len().min(max);
    // SAFETY: `spare` is writable memory owned by `buf` with room for `want` bytes; read(2)
    // writes at most `want` bytes into it and reports how many.
    let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), want) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised the first `n` bytes of the spare capacity, and n <= want.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}
