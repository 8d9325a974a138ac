//! The service manager's notification socket (`sd_notify(3)` without libsystemd): one datagram
//! of `KEY=VALUE` lines per notification to the unix datagram socket `NOTIFY_SOCKET` names — a
//! path, or with a leading `@` a name in the abstract namespace.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Where notifications go.
pub(crate) struct NotifySocket {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl NotifySocket {
    /// The socket `NOTIFY_SOCKET`'s value names: `/run/...` or `@name`.
    pub(crate) fn new(name: &str) -> io::Result<NotifySocket> {
        let addr = match name.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes())?,
            None if name.starts_with('/') => SocketAddr::from_pathname(name)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("NOTIFY_SOCKET={name} is neither an absolute path nor @name"),
                ))
            }
        };
        Ok(NotifySocket {
            socket: UnixDatagram::unbound()?,
            addr,
        })
    }

    /// Send one notification (`READY=1`, or several newline-separated assignments).
    pub(crate) fn send(&self, state: &str) -> io::Result<()> {
        self.socket.send_to_addr(state.as_bytes(), &self.addr)?;
        Ok(())
    }
}

/// `CLOCK_MONOTONIC` in microseconds: what `RELOADING=1` carries as `MONOTONIC_USEC`.
pub(crate) fn monotonic_usec() -> io::Result<u64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec that clock_gettime writes into.
    super::syscall!(clock_gettime(libc::CLOCK_MONOTONIC, &mut now))?;
    const USEC_PER_SEC: u64 = 1_000_000;
    const NSEC_PER_USEC: u64 = 1_000;
    Ok(now.tv_sec as u64 * USEC_PER_SEC + now.tv_nsec as u64 / NSEC_PER_USEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_a_path_and_an_abstract_socket() {
        let dir = std::env::temp_dir().join(format!("ws-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        NotifySocket::new(path.to_str().unwrap())
            .unwrap()
            .send("READY=1")
            .unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("ws-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&addr).unwrap();
        NotifySocket::new(&format!("@{name}"))
            .unwrap()
            .send("STOPPING=1")
            .unwrap();
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
        assert!(NotifySocket::new("relative").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(monotonic_usec().unwrap() > 0);
    }
}
