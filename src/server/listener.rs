//! A worker's listening sockets: each with the options every connection accepted on it carries,
//! and its local address when that is the same for all of them.
//!
//! Responses leave in as few writes as we can make them, and Nagle would only delay the last
//! segment of each (and every chunk of a stream), so every TCP connection gets `TCP_NODELAY`.
//! It is set once, on the listening socket: Linux copies it into each connection accepted
//! there. The first connection shows whether it did; if not, each one gets its own
//! `setsockopt`, as before (one system call per connection, which `Connection: close` pays on
//! every request).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU8, Ordering};

use crate::listen::{ListenerOptions, Peer};
use crate::sys::socket::{self, listening_stream, set_nonblocking, Stream};

/// One listening socket (TCP or unix), non-blocking.
pub(crate) struct Listener {
    socket: OwnedFd,
    options: ListenerOptions,
    local: Local,
    /// Whether accepted connections need their own `TCP_NODELAY` (`NODELAY_*`).
    nodelay: AtomicU8,
}

/// Accepted connections have TCP_NODELAY from the listener (or, on a unix socket, no Nagle).
const NODELAY_INHERITED: u8 = 0;
/// The listener has it; whether its connections do is checked on the first one.
const NODELAY_UNCHECKED: u8 = 1;
/// Each accepted connection is given it.
const NODELAY_PER_CONNECTION: u8 = 2;

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
        let local = match local_addr {
            Some(addr) if addr.ip().is_unspecified() => Local::PerConnection,
            fixed => Local::Fixed(fixed),
        };
        Ok(Listener {
            socket,
            options,
            local,
            nodelay: AtomicU8::new(nodelay),
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
                let state = match inherited {
                    true => NODELAY_INHERITED,
                    false => NODELAY_PER_CONNECTION,
                };
                self.nodelay.store(state, Ordering::Relaxed);
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
        let _clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for _ in 0..3 {
            let accepted = loop {
                match listener.accept() {
                    Ok(accepted) => break accepted,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            assert!(socket::nodelay(accepted.stream.as_fd()).unwrap());
        }
        assert_ne!(listener.nodelay.load(Ordering::Relaxed), NODELAY_UNCHECKED);
    }
}
