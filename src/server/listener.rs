//! A worker's listening sockets: each with the options every connection accepted on it carries,
//! and its local address when that is the same for all of them.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::listen::{ListenerOptions, Peer};
use crate::sys::socket::{self, listening_stream, set_nonblocking, Stream};

/// One listening socket (TCP or unix), non-blocking.
pub(crate) struct Listener {
    socket: OwnedFd,
    options: ListenerOptions,
    local: Local,
}

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
        let local = match socket::local_addr(socket.as_fd())? {
            Some(addr) if addr.ip().is_unspecified() => Local::PerConnection,
            fixed => Local::Fixed(fixed),
        };
        Ok(Listener {
            socket,
            options,
            local,
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
        Ok(Accepted {
            stream,
            peer,
            local,
            options: self.options,
        })
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}
