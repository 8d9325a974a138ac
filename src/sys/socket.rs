//! Non-blocking TCP sockets: accept, a bounded wait for readiness, a read into spare capacity.
//!
//! Sockets stay non-blocking for their whole life (the server's threads share one epoll
//! instance); a thread that must wait for one socket waits here, with `poll(2)` on it alone.

use std::io;
use std::mem::MaybeUninit;
use std::net::{
    Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream,
};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd};
use std::time::{Duration, Instant};

use super::syscall;

/// Accept one pending connection, already non-blocking and close-on-exec (one syscall, as
/// `accept4` sets both). `WouldBlock` when none is pending.
pub(crate) fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` has room for any socket address and `len` says so; the kernel writes at
    // most `len` bytes and stores the address's real length in `len`. The listener is borrowed.
    let fd = syscall!(accept4(
        listener.as_raw_fd(),
        storage.as_mut_ptr().cast(),
        &mut len,
        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC
    ))?;
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    // SAFETY: zero-initialised and then (partly) filled by the kernel: every byte is initialised.
    let storage = unsafe { storage.assume_init() };
    let peer = socket_addr(&storage, len)?;
    Ok((stream, peer))
}

/// A TCP peer's address from what `accept4` stored.
fn socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> io::Result<SocketAddr> {
    let len = len as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which fits in it and has
            // a smaller alignment.
            let addr =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Ok(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
                u16::from_be(addr.sin_port),
            )))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which fits in it and has
            // a smaller alignment.
            let addr = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(addr.sin6_addr.s6_addr),
                u16::from_be(addr.sin6_port),
                addr.sin6_flowinfo,
                addr.sin6_scope_id,
            )))
        }
        family => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("accepted a connection with address family {family}, not TCP/IP"),
        )),
    }
}

/// What `wait_ready` waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ready {
    Readable,
    Writable,
}

/// Wait until `fd` is readable (or writable), or `timeout` passes: `Ok(false)` on timeout. An
/// error or hang-up on the socket counts as ready (the next read or write reports it).
pub(crate) fn wait_ready(fd: BorrowedFd<'_>, ready: Ready, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: match ready {
                Ready::Readable => libc::POLLIN,
                Ready::Writable => libc::POLLOUT,
            },
            revents: 0,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let millis = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `pfd` is a valid pollfd for the duration of the call and nfds is 1; `fd` is
        // borrowed, so open.
        match syscall!(poll(&mut pfd, 1, millis)) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One `read(2)` of up to `max` bytes appended to `buf`, without zero-filling the space first
/// (a memset per read would cost as much as parsing a small request head).
pub(crate) fn read_append(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    buf.reserve(max);
    let spare = buf.spare_capacity_mut();
    let want = spare.len().min(max);
    // SAFETY: `spare` is writable memory owned by `buf` with room for `want` bytes; read(2)
    // writes at most `want` bytes into it and reports how many. `fd` is borrowed, so open.
    let n = syscall!(read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), want))?;
    let n = n as usize;
    // SAFETY: the kernel initialised the first `n` bytes of the spare capacity, and n <= want.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn accept_reads_and_waits_on_a_loopback_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let err = accept(&listener).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = loop {
            match accept(&listener) {
                Ok(accepted) => break accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("accept: {e}"),
            }
        };
        assert_eq!(peer, client.local_addr().unwrap());
        let mut buf = Vec::new();
        let empty = read_append(server.as_fd(), &mut buf, 16).unwrap_err();
        assert_eq!(
            empty.kind(),
            io::ErrorKind::WouldBlock,
            "accepted non-blocking"
        );
        assert!(!wait_ready(server.as_fd(), Ready::Readable, Duration::ZERO).unwrap());
        client.write_all(b"hello").unwrap();
        assert!(wait_ready(server.as_fd(), Ready::Readable, Duration::from_secs(5)).unwrap());
        assert_eq!(read_append(server.as_fd(), &mut buf, 16).unwrap(), 5);
        assert_eq!(buf, b"hello");
        assert!(wait_ready(server.as_fd(), Ready::Writable, Duration::ZERO).unwrap());
    }
}
