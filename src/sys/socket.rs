//! Stream sockets, TCP or unix: the listener's options (`SO_REUSEPORT`, what an inherited
//! descriptor is), accept, a connection's reads and writes, a bounded wait for readiness, a read
//! into spare capacity.
//!
//! Sockets stay non-blocking for their whole life (the server's threads share one epoll
//! instance); a thread that must wait for one socket waits here, with `poll(2)` on it alone.
//! A connection is a [`Stream`] whatever its family: the serving code reads and writes bytes
//! and never needs to know (its peer address says, [`Peer`]).

use std::io::{self, IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::peer::Peer;
use super::syscall;

/// A connected stream socket (TCP or unix), non-blocking. Reads and writes are plain
/// `read(2)`/`send(2)`/`writev(2)`, which mean the same for both families.
#[derive(Debug)]
pub(crate) struct Stream(OwnedFd);

impl From<OwnedFd> for Stream {
    fn from(fd: OwnedFd) -> Stream {
        Stream(fd)
    }
}

impl From<TcpStream> for Stream {
    fn from(stream: TcpStream) -> Stream {
        Stream(stream.into())
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Stream {
    /// TCP_NODELAY on a TCP socket; a unix socket has no Nagle to turn off (`Ok`).
    pub(crate) fn set_nodelay(&self) -> io::Result<()> {
        set_nodelay(self.0.as_fd())
    }

    /// Ends this side of the connection (a FIN after what was written), keeping the socket
    /// open: a close with input unread then still resets only after the output left.
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        // SAFETY: shutdown(2) on a borrowed, so open, descriptor only changes socket state.
        syscall!(shutdown(self.0.as_raw_fd(), libc::SHUT_WR)).map(drop)
    }

    /// The local address of a TCP connection (`None` for a unix one).
    pub(crate) fn local_addr(&self) -> io::Result<Option<SocketAddr>> {
        local_addr(self.0.as_fd())
    }
}

/// TCP_NODELAY on a TCP socket (a listening one too: Linux copies it into every connection
/// accepted there); a unix socket has no Nagle to turn off (`Ok`).
pub(crate) fn set_nodelay(socket: BorrowedFd<'_>) -> io::Result<()> {
    set_tcp_option(socket, libc::TCP_NODELAY, 1)
}

/// TCP_DEFER_ACCEPT on a listening TCP socket: a connection is queued for `accept` only once
/// its first bytes arrived (or, for a client that stays silent, after about `seconds`), so the
/// first read of an accepted connection finds its request instead of nothing. A unix socket
/// has no such option (`Ok`).
pub(crate) fn set_defer_accept(socket: BorrowedFd<'_>, seconds: u32) -> io::Result<()> {
    let seconds = libc::c_int::try_from(seconds).unwrap_or(libc::c_int::MAX);
    set_tcp_option(socket, libc::TCP_DEFER_ACCEPT, seconds)
}

/// Sets an `IPPROTO_TCP` option whose value is an int; `Ok` on a socket that has no TCP options
/// (a unix one).
fn set_tcp_option(
    socket: BorrowedFd<'_>,
    option: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a c_int that lives through the call and the length says so; the
    // descriptor is borrowed, so open.
    let set = syscall!(setsockopt(
        socket.as_raw_fd(),
        libc::IPPROTO_TCP,
        option,
        (&value as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t
    ));
    match set {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(()),
        other => other.map(drop),
    }
}

/// Whether TCP_NODELAY is on (a unix socket, which has no Nagle: `true`).
pub(crate) fn nodelay(socket: BorrowedFd<'_>) -> io::Result<bool> {
    let mut on: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `on` is a c_int that lives through the call and `len` says so; the kernel writes
    // at most `len` bytes. The descriptor is borrowed, so open.
    let got = syscall!(getsockopt(
        socket.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_NODELAY,
        (&mut on as *mut libc::c_int).cast(),
        &mut len
    ));
    match got {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(true),
        other => other.map(|_| on != 0),
    }
}

/// The local address of a TCP socket (`None` for a unix one).
pub(crate) fn local_addr(socket: BorrowedFd<'_>) -> io::Result<Option<SocketAddr>> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` has room for any socket address and `len` says so; the kernel writes
    // at most `len` bytes. The descriptor is borrowed, so open.
    syscall!(getsockname(
        socket.as_raw_fd(),
        storage.as_mut_ptr().cast(),
        &mut len
    ))?;
    // SAFETY: zero-initialised, then (partly) filled by the kernel.
    let storage = unsafe { storage.assume_init() };
    Ok(match peer_from(&storage, len)? {
        Peer::Tcp(addr) => Some(addr),
        Peer::Unix => None,
    })
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is writable for `buf.len()` bytes; the descriptor is owned, so open.
        let n = syscall!(read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()))?;
        Ok(n as usize)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf, 0)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.send_vectored(bufs, 0)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream {
    /// One `send` of `buf` with `flags` besides `MSG_NOSIGNAL`.
    fn send(&mut self, buf: &[u8], flags: libc::c_int) -> io::Result<usize> {
        // SAFETY: `buf` is readable for `buf.len()` bytes; the descriptor is owned, so open.
        // MSG_NOSIGNAL: a client that went away is an EPIPE error here, not a signal.
        let n = syscall!(send(
            self.0.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL | flags
        ))?;
        Ok(n as usize)
    }

    /// One `sendmsg` of `bufs` with `flags` besides `MSG_NOSIGNAL`; one buffer (the usual
    /// response, held whole) goes with `send`, which costs the kernel less than `sendmsg`'s
    /// message header and iovec array (about 0.2–0.4 µs of system time per call, measured).
    fn send_vectored(&mut self, bufs: &[IoSlice<'_>], flags: libc::c_int) -> io::Result<usize> {
        if let [buf] = bufs {
            return self.send(buf, flags);
        }
        // SAFETY: msghdr is plain old data, for which all-zero bytes are a valid value (no
        // address, no control data).
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        // IoSlice is ABI-compatible with iovec; sendmsg only reads through the pointer.
        message.msg_iov = bufs.as_ptr().cast_mut().cast();
        message.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
        // SAFETY: `message` points to `msg_iovlen` iovecs that `bufs` borrows for the call,
        // each to readable memory; the descriptor is owned, so open. MSG_NOSIGNAL as in `write`
        // (an app may have changed SIGPIPE's disposition).
        let n = syscall!(sendmsg(
            self.0.as_raw_fd(),
            &message,
            libc::MSG_NOSIGNAL | flags
        ))?;
        Ok(n as usize)
    }

    /// Whether the peer sent bytes that wait unread in the socket (a peek that takes nothing
    /// and never blocks). False on end of stream and on any error.
    pub(crate) fn has_input(&self) -> bool {
        let mut byte = 0u8;
        // SAFETY: the buffer is one writable byte owned by this frame; the descriptor is owned,
        // so open. MSG_PEEK leaves the byte in the socket.
        let peeked = syscall!(recv(
            self.0.as_raw_fd(),
            (&raw mut byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT
        ));
        matches!(peeked, Ok(1))
    }

    /// Writes through this stream that say more follows at once (`MSG_MORE`): the kernel holds
    /// a short segment back to fill it with what comes next, as `TCP_CORK` would for one
    /// call. For a head whose body `sendfile(2)` sends next: they leave in the same segments,
    /// without two `setsockopt` calls around them.
    pub(crate) fn more_follows(&mut self) -> MoreFollows<'_> {
        MoreFollows(self)
    }
}

/// [`Stream::more_follows`].
pub(crate) struct MoreFollows<'s>(&'s mut Stream);

impl Write for MoreFollows<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.send_vectored(bufs, libc::MSG_MORE)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for MoreFollows<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Accept one pending connection, already non-blocking and close-on-exec (one syscall, as
/// `accept4` sets both). `WouldBlock` when none is pending.
pub(crate) fn accept(listener: BorrowedFd<'_>) -> io::Result<(Stream, Peer)> {
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
    let stream = Stream(unsafe { OwnedFd::from_raw_fd(fd) });
    // SAFETY: zero-initialised and then (partly) filled by the kernel: every byte is initialised.
    let storage = unsafe { storage.assume_init() };
    let peer = peer_from(&storage, len)?;
    Ok((stream, peer))
}

/// A peer's address from what `accept4` (or `getsockname`) stored.
fn peer_from(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> io::Result<Peer> {
    let len = len as usize;
    match i32::from(storage.ss_family) {
        // Clients of a unix socket are nearly always unnamed; their path would say nothing.
        libc::AF_UNIX => Ok(Peer::Unix),
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which fits in it and has
            // a smaller alignment.
            let addr =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Ok(Peer::Tcp(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
                u16::from_be(addr.sin_port),
            ))))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which fits in it and has
            // a smaller alignment.
            let addr = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Ok(Peer::Tcp(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(addr.sin6_addr.s6_addr),
                u16::from_be(addr.sin6_port),
                addr.sin6_flowinfo,
                addr.sin6_scope_id,
            ))))
        }
        family => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a socket address of family {family}, neither TCP/IP nor unix"),
        )),
    }
}

/// Turn SO_REUSEPORT on: several sockets (of this or other processes) may listen on the same
/// port, and the kernel spreads new connections over them.
pub(crate) fn set_reuse_port(socket: BorrowedFd<'_>) -> io::Result<()> {
    set_int_option(socket, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)
}

fn set_int_option(
    socket: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a c_int that lives through the call and the length says so; the
    // descriptor is borrowed, so open.
    syscall!(setsockopt(
        socket.as_raw_fd(),
        level,
        name,
        (&value as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t
    ))
    .map(drop)
}

fn int_option(socket: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int) -> io::Result<i32> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` has room for the c_int the option holds and `len` says so; the
    // descriptor is borrowed (getsockopt on a non-socket is ENOTSOCK).
    syscall!(getsockopt(
        socket.as_raw_fd(),
        level,
        name,
        (&mut value as *mut libc::c_int).cast(),
        &mut len
    ))?;
    Ok(value)
}

/// The family of a listening socket: what an inherited descriptor must be to serve on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListeningFamily {
    Tcp,
    Unix,
}

/// Whether `fd` is a stream socket that listens (TCP/IP or unix): `Err` says what it is instead,
/// in words an operator can act on.
pub(crate) fn listening_stream(fd: BorrowedFd<'_>) -> Result<ListeningFamily, String> {
    let kind = int_option(fd, libc::SOL_SOCKET, libc::SO_TYPE).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOTSOCK) {
            "it is not a socket".to_owned()
        } else {
            format!("it is not a usable socket ({e})")
        }
    })?;
    if kind != libc::SOCK_STREAM {
        return Err("it is not a stream socket (TCP or unix)".to_owned());
    }
    let family = match int_option(fd, libc::SOL_SOCKET, libc::SO_DOMAIN) {
        Ok(libc::AF_INET | libc::AF_INET6) => ListeningFamily::Tcp,
        Ok(libc::AF_UNIX) => ListeningFamily::Unix,
        Ok(other) => return Err(format!("its address family {other} is neither IP nor unix")),
        Err(e) => return Err(format!("its family cannot be read ({e})")),
    };
    match int_option(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN) {
        Ok(0) => Err("it is a socket that does not listen (no listen(2) call)".to_owned()),
        Ok(_) => Ok(family),
        Err(e) => Err(format!("cannot tell whether it listens ({e})")),
    }
}

/// Set or clear `O_NONBLOCK` on a descriptor (an inherited listener may come either way).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL on an open (borrowed) descriptor only reads its flags.
    let flags = syscall!(fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
    // SAFETY: F_SETFL on an open (borrowed) descriptor only changes its status flags.
    syscall!(fcntl(
        fd.as_raw_fd(),
        libc::F_SETFL,
        flags | libc::O_NONBLOCK
    ))
    .map(drop)
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
    use std::net::TcpListener;

    #[test]
    fn accept_reads_and_waits_on_a_loopback_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let err = accept(listener.as_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = loop {
            match accept(listener.as_fd()) {
                Ok(accepted) => break accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("accept: {e}"),
            }
        };
        assert_eq!(peer, Peer::Tcp(client.local_addr().unwrap()));
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

#[cfg(test)]
mod unix_tests {
    use super::*;
    use std::os::unix::net::{UnixListener, UnixStream};

    #[test]
    fn a_unix_peer_is_unix_and_its_stream_reads_and_writes() {
        let dir = std::env::temp_dir().join(format!("ws-sock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        assert_eq!(
            listening_stream(listener.as_fd()),
            Ok(ListeningFamily::Unix)
        );
        let mut client = UnixStream::connect(&path).unwrap();
        let (mut server, peer) = accept(listener.as_fd()).unwrap();
        assert_eq!(peer, Peer::Unix);
        server.set_nodelay().unwrap();
        assert_eq!(server.local_addr().unwrap(), None);
        client.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        assert!(wait_ready(server.as_fd(), Ready::Readable, Duration::from_secs(5)).unwrap());
        assert_eq!(server.read(&mut buf).unwrap(), 4);
        let written = server
            .write_vectored(&[IoSlice::new(b"po"), IoSlice::new(b"ng")])
            .unwrap();
        assert_eq!(written, 4);
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_a_listening_stream_socket_passes() {
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(listening_stream(file.as_fd())
            .unwrap_err()
            .contains("not a socket"));
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(listening_stream(a.as_fd())
            .unwrap_err()
            .contains("does not listen"));
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(listening_stream(udp.as_fd())
            .unwrap_err()
            .contains("not a stream"));
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(listening_stream(tcp.as_fd()), Ok(ListeningFamily::Tcp));
    }
}
