//! Listeners: where the server accepts connections, from `-b/--bind` to the socket each worker
//! accepts on.
//!
//! - `spec.rs` is one `-b ADDR[,OPTION...]`: the address kinds (`HOST:PORT`, `[V6]:PORT`,
//!   `:PORT`, `PORT`, `unix:PATH`, `fd://N`, `fd://NAME`) and the per-listener options
//!   ([`ListenerOptions`]: `tls`, `proxy`, `h2`) that travel to the workers and onto every connection.
//! - `args.rs` holds the "Listeners" flags (`--bind`, `--backlog`, `--reuse-port`,
//!   `--socket-mode`).
//! - `open.rs` is the master's side: it resolves and binds every spec once, before any worker
//!   starts, and owns the sockets for its whole life, so every listener survives hot swaps; it
//!   removes the unix socket files it made when it exits.
//! - `systemd.rs` reads socket activation (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`);
//!   `notify.rs` tells systemd what the master does (`sd_notify`, over `crate::sys::notify`).
//!
//! [`Peer`] is who is on the other end of an accepted connection.

pub(crate) mod args;
pub(crate) mod notify;
pub(crate) mod open;
pub(crate) mod spec;
pub(crate) mod systemd;

use std::fmt;
use std::net::{IpAddr, SocketAddr};

pub(crate) use spec::ListenerOptions;

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
