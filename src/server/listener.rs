//! A worker's listening sockets: each with the options every connection accepted on it carries,
//! and its local address when that is the same for all of them.
//!
//! Responses leave in as few writes as we can make them, and Nagle would only delay the last
//! segment of each (and every chunk of a stream), so every TCP connection gets `TCP_NODELAY`.
//! It is set once, on the listening socket: Linux copies it into each connection accepted
//! there. The first connections show whether it did: one without it may have been queued before
//! this worker set it (the master listens first, and a client may connect before any worker
//! runs), so it gets its own `setsockopt` and the next one is checked too; only after
//! `NODELAY_CHECKS` such connections in a row does every connection get its own (one system
//! call per connection, which `Connection: close` pays on every request).
//!
//! TCP listeners also get `TCP_DEFER_ACCEPT`: the kernel queues a connection for `accept` once
//! its request's first bytes are there, so the read right after `accept` finds them. Without
//! it, a connection accepted between the client's handshake and its request (about 4 in 10 under
//! `Connection: close` load) cost a read that found nothing, a registration with epoll, an
//! event and a second read. A client that connects and stays silent is accepted after about
//! `DEFER_ACCEPT_SECS` (the kernel's next SYN-ACK retransmission), and its header timeout runs
//! from then.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use crate::listen::{ListenerOptions, Peer};
use crate::sys::socket::{self, listening_stream, set_nonblocking, Stream};

/// One listening socket (TCP or unix), non-blocking.
pub(crate) struct Listener {
    socket: OwnedFd,
    options: ListenerOptions,
    local: Local,
    /// Whether accepted connections need their own `TCP_NODELAY` (`NODELAY_*`).
    nodelay: AtomicU8,
    /// While `NODELAY_UNCHECKED`: how many more connections without it are taken for ones
    /// queued before the listener had it.
    nodelay_checks_left: AtomicU32,
}

/// Accepted connections have TCP_NODELAY from the listener (or, on a unix socket, no Nagle).
const NODELAY_INHERITED: u8 = 0;
/// The listener has it; whether its connections do is checked on the first one.
const NODELAY_UNCHECKED: u8 = 1;
/// Each accepted connection is given it.
const NODELAY_PER_CONNECTION: u8 = 2;

/// Connections without TCP_NODELAY in a row before the listener's is taken not to carry over:
/// more than a listen queue filled before the worker started is likely to hold, bounded so that
/// a kernel that does not copy it costs a `getsockopt` on only so many connections.
const NODELAY_CHECKS: u32 = 1024;

/// How long a connection that sends nothing may wait before it is accepted all the same.
const DEFER_ACCEPT_SECS: u32 = 1;

/// A connection's local address, as its listener knows it.
#[derive(Clone, Copy, Debug)]
enum Local {
    /// The same for every connection: a TCP listener bound to one address, or a unix socket
    /// (`None`), so there is no `getsockname` per connection.
    Fixed(Option<SocketAddr>),
    /// Bound to every address (`0.0.0.0`, `[::]`): each connection's own.
    PerConnection,
}

/// An accepted connection, before it is served.
pub(crate) struct Accepted {
    pub(crate) stream: Stream,
    pub(crate) peer: Peer,
    /// `None` for a unix socket.
    pub(crate) local: Option<SocketAddr>,
    pub(crate) options: ListenerOptions,
}

impl Listener {
    /// Take an inherited listening socket, checking that it is one.
    pub(crate) fn new(socket: OwnedFd, options: ListenerOptions) -> io::Result<Listener> {
        listening_stream(socket.as_fd())
            .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
        set_nonblocking(socket.as_fd())?;
        let local_addr = socket::local_addr(socket.as_fd())?;
        let nodelay = match local_addr {
            None => NODELAY_INHERITED,
            Some(_) => match socket::set_nodelay(socket.as_fd()) {
                Ok(()) => NODELAY_UNCHECKED,
                Err(e) => {
                    log::debug!("listener: TCP_NODELAY: {e}; set on each connection instead");
                    NODELAY_PER_CONNECTION
                }
            },
        };
        if local_addr.is_some() {
            if let Err(e) = socket::set_defer_accept(socket.as_fd(), DEFER_ACCEPT_SECS) {
                // Only a cost: connections are accepted before their request, as without it.
                log::debug!("listener: TCP_DEFER_ACCEPT: {e}");
            }
        }
        let local = match local_addr {
            Some(addr) if addr.ip().is_unspecified() => Local::PerConnection,
            fixed => Local::Fixed(fixed),
        };
        Ok(Listener {
            socket,
            options,
            local,
            nodelay: AtomicU8::new(nodelay),
            nodelay_checks_left: AtomicU32::new(NODELAY_CHECKS),
        })
    }

    /// Accept one pending connection (`WouldBlock` when none is).
    /// The options every connection accepted here carries.
    pub(crate) fn options(&self) -> ListenerOptions {
        self.options
    }

    pub(crate) fn accept(&self) -> io::Result<Accepted> {
        let (stream, peer) = socket::accept(self.socket.as_fd())?;
        let local = match self.local {
            Local::Fixed(local) => local,
            // The client may have reset the connection already: that one failed, not accepting.
            Local::PerConnection => stream
                .local_addr()
                .map_err(|_| io::Error::from_raw_os_error(libc::ECONNABORTED))?,
        };
        self.nodelay(&stream, peer);
        Ok(Accepted {
            stream,
            peer,
            local,
            options: self.options,
        })
    }

    /// Makes sure `stream` has TCP_NODELAY: a system call only if the listener's did not carry
    /// over (a failure is logged: the connection is served all the same).
    fn nodelay(&self, stream: &Stream, peer: Peer) {
        let set = match self.nodelay.load(Ordering::Relaxed) {
            NODELAY_INHERITED => return,
            NODELAY_UNCHECKED => {
                let inherited = socket::nodelay(stream.as_fd()).unwrap_or(false);
                if inherited {
                    self.nodelay.store(NODELAY_INHERITED, Ordering::Relaxed);
                } else if self.nodelay_checks_left.fetch_sub(1, Ordering::Relaxed) <= 1 {
                    self.nodelay
                        .store(NODELAY_PER_CONNECTION, Ordering::Relaxed);
                }
                !inherited
            }
            _ => true,
        };
        if set {
            if let Err(e) = stream.set_nodelay() {
                log::debug!("{peer}: TCP_NODELAY: {e}");
            }
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    /// Every accepted TCP connection has TCP_NODELAY, whether it came from the listener or
    /// from a `setsockopt` of its own; the first and the later ones alike.
    #[test]
    fn accepted_connections_have_nodelay() {
        let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = Listener::new(std_listener.into(), ListenerOptions::default()).unwrap();
        assert!(socket::nodelay(listener.as_fd()).unwrap());
        let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for mut client in &clients {
            // A silent client would be accepted only after TCP_DEFER_ACCEPT's second.
            std::io::Write::write_all(&mut client, b"GET / HTTP/1.1\r\n\r\n").unwrap();
        }
        for _ in 0..3 {
            let accepted = accept_one(&listener);
            assert!(socket::nodelay(accepted.stream.as_fd()).unwrap());
        }
        assert_ne!(listener.nodelay.load(Ordering::Relaxed), NODELAY_UNCHECKED);
    }

    /// Connections queued before the listener got TCP_NODELAY (a client that connected before
    /// the worker started) lack it: they get their own, and do not make every later connection
    /// pay a `setsockopt` when those do inherit it.
    #[test]
    fn connections_queued_before_the_listener_had_nodelay_do_not_decide_for_the_rest() {
        let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let early: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for mut client in &early {
            std::io::Write::write_all(&mut client, b"GET / HTTP/1.1\r\n\r\n").unwrap();
        }
        let listener = Listener::new(std_listener.into(), ListenerOptions::default()).unwrap();
        let late = TcpStream::connect(addr).unwrap();
        std::io::Write::write_all(&mut &late, b"GET / HTTP/1.1\r\n\r\n").unwrap();
        for _ in 0..3 {
            let accepted = accept_one(&listener);
            assert!(socket::nodelay(accepted.stream.as_fd()).unwrap());
        }
        assert_eq!(listener.nodelay.load(Ordering::Relaxed), NODELAY_INHERITED);
    }

    /// A connection is accepted once its request is there: one that connected earlier but sent
    /// nothing yet waits behind it (TCP_DEFER_ACCEPT), and the first read finds the request.
    #[test]
    fn a_connection_is_accepted_once_its_request_is_there() {
        let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = Listener::new(std_listener.into(), ListenerOptions::default()).unwrap();
        let _silent = TcpStream::connect(addr).unwrap();
        let client = TcpStream::connect(addr).unwrap();
        std::io::Write::write_all(&mut &client, b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut accepted = accept_one(&listener);
        assert_eq!(accepted.peer, Peer::Tcp(client.local_addr().unwrap()));
        let mut buf = [0u8; 64];
        let read = std::io::Read::read(&mut accepted.stream, &mut buf).unwrap();
        assert_eq!(&buf[..read], b"GET / HTTP/1.1\r\n\r\n");
    }

    fn accept_one(listener: &Listener) -> Accepted {
        for _ in 0..5000 {
            match listener.accept() {
                Ok(accepted) => return accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
        panic!("no connection was accepted within 5 s");
    }
}
