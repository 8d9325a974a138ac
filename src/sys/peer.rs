//! Who is on the other end of an accepted connection, as `accept` tells it (re-exported by
//! `crate::listen`, whose listeners accept them).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The other end of a connection, as the socket tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Peer {
    Tcp(SocketAddr),
    /// A client of a unix socket: such clients are nearly always unnamed, so there is no
    /// address to give. `REMOTE_ADDR` is empty and `REMOTE_PORT` absent, as with gunicorn.
    Unix,
}

impl Peer {
    /// The peer's IP address (`None` for a unix client).
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        match self {
            Peer::Tcp(addr) => Some(addr.ip()),
            Peer::Unix => None,
        }
    }

    /// The peer as the access log shows it: its IP address, or `unix`.
    pub(crate) fn host(&self) -> PeerHost {
        PeerHost(self.ip())
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Unix => f.write_str("unix"),
        }
    }
}

/// A peer's IP address, or `unix` for a unix-socket client (see [`Peer::host`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PeerHost(pub(crate) Option<IpAddr>);

impl fmt::Display for PeerHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => write!(f, "{ip}"),
            None => f.write_str("unix"),
        }
    }
}
