//! The listening socket.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel may queue before `accept`; bursts of new connections (the
/// `Connection: close` benchmark, a reconnect storm) overflow the default of 128.
const BACKLOG: i32 = 1024;

/// Bind `addr` with SO_REUSEADDR (restart without waiting out TIME_WAIT), non-blocking.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
