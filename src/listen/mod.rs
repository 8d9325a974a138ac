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
//! [`Peer`] is who is on the other end of an accepted connection (defined with `accept`, in
//! `crate::sys::peer`).

pub(crate) mod args;
pub(crate) mod notify;
pub(crate) mod open;
pub(crate) mod spec;
pub(crate) mod systemd;

pub(crate) use crate::sys::peer::{Peer, PeerHost};
pub(crate) use spec::ListenerOptions;
