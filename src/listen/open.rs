//! The master opens every listener once, before the first worker starts, and keeps them until
//! it exits: workers of every generation inherit the same sockets, so hot swaps never close one
//! and no connection waiting in a backlog is lost.
//!
//! A unix socket file left by a server that is gone (nothing accepts on it: `connect` is
//! refused) is replaced; one that a live server accepts on is refused, as is a path that is not
//! a socket. The master removes the socket files it created when it exits — unless another
//! server has replaced the file meanwhile (its inode tells).

use std::fmt;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::args::{ListenArgs, DEFAULT_BIND};
use super::spec::{ListenAddr, ListenerOptions, ListenerSpec};
use super::systemd::Passed;
use crate::sys::process::claim_inherited;
use crate::sys::socket::{listening_stream, set_nonblocking, set_reuse_port};

/// The most listeners one server opens: each worker finds them at consecutive descriptor
/// numbers, which must stay below what it can claim (`sys::process::claim_inherited`).
pub(crate) const MAX_LISTENERS: usize = 50;

/// One listening socket the master holds.
#[derive(Debug)]
pub(crate) struct OpenListener {
    pub(crate) socket: OwnedFd,
    pub(crate) options: ListenerOptions,
    /// What it listens on, for people: `127.0.0.1:8000`, `[::1]:8000`, `unix:/run/a.sock`,
    /// `fd://3`, `fd://web` (with the real port when port 0 was asked).
    pub(crate) name: String,
}

/// Every listener of this server, and the socket files to remove when it exits.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    pub(crate) open: Vec<OpenListener>,
    pub(crate) files: Vec<SocketFile>,
}

/// Why a listener could not be opened: which `-b` and what to do.
#[derive(Debug)]
pub(crate) struct ListenError {
    spec: String,
    reason: String,
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot listen on {}: {}", self.spec, self.reason)
    }
}

impl std::error::Error for ListenError {}

fn refuse(spec: impl fmt::Display, reason: impl fmt::Display) -> ListenError {
    ListenError {
        spec: spec.to_string(),
        reason: reason.to_string(),
    }
}

/// A socket file this master created, removed when the value is dropped if the path still
/// names that same file.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The socket file a listener named `unix:PATH` was bound at by another master (a binary
    /// upgrade's old one), to remove when this one exits; `None` for other listeners.
    pub(crate) fn adopt(name: &str) -> Option<SocketFile> {
        let path = Path::new(name.strip_prefix("unix:")?);
        let meta = fs::symlink_metadata(path).ok()?;
        Some(SocketFile {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Another master serves on this socket now: leave its file in place.
    pub(crate) fn keep(mut self) {
        self.ino = 0;
        self.dev = 0;
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => {
                if let Err(e) = fs::remove_file(&self.path) {
                    log::warn!("cannot remove {}: {e}", self.path.display());
                }
            }
            // Gone, or another server's by now: not ours to remove.
            _ => {}
        }
    }
}

/// Open every listener `-b` asks for, or those systemd passed (`activated`) when there is no
/// `-b`. With both, the passed sockets are served only as `-b fd://NAME` (or `fd://N`) names
/// them; a passed socket no `-b` names is closed with a warning.
pub(crate) fn open_all(
    args: &ListenArgs,
    activated: Option<Vec<Passed>>,
) -> Result<Listeners, ListenError> {
    let mut listeners = Listeners::default();
    // Every name systemd passed, for the error that names them; `None`: not activated.
    let names: Option<Vec<String>> = activated
        .as_ref()
        .map(|passed| passed.iter().map(|p| p.name.clone()).collect());
    let mut passed = activated.unwrap_or_default();
    if args.bind.is_empty() && !passed.is_empty() {
        for socket in std::mem::take(&mut passed) {
            let spec = ListenerSpec {
                addr: ListenAddr::FdName(socket.name.clone()),
                options: ListenerOptions::default(),
            };
            listeners
                .open
                .push(inherit(&spec, socket.fd, &spec.to_string())?);
        }
        return Ok(listeners);
    }
    let default;
    let specs = if args.bind.is_empty() {
        default = [DEFAULT_BIND
            .parse::<ListenerSpec>()
            .map_err(|e| refuse(DEFAULT_BIND, e))?];
        &default[..]
    } else {
        &args.bind[..]
    };
    for spec in specs {
        open_one(spec, args, &mut passed, names.as_deref(), &mut listeners)?;
    }
    for unused in passed {
        log::warn!(
            "systemd passed the socket '{}' (descriptor {}) but no --bind fd://{} names it: closing it",
            unused.name,
            unused.fd,
            unused.name
        );
        match claim_inherited(unused.fd) {
            Ok(fd) => drop(fd),
            Err(e) => log::debug!("cannot close descriptor {}: {e}", unused.fd),
        }
    }
    if listeners.open.len() > MAX_LISTENERS {
        return Err(refuse(
            format!("{} addresses", listeners.open.len()),
            format!("at most {MAX_LISTENERS} listeners are supported"),
        ));
    }
    Ok(listeners)
}

fn open_one(
    spec: &ListenerSpec,
    args: &ListenArgs,
    passed: &mut Vec<Passed>,
    names: Option<&[String]>,
    listeners: &mut Listeners,
) -> Result<(), ListenError> {
    let options = spec.options;
    match &spec.addr {
        ListenAddr::Ip(addr) => {
            let socket = bind_tcp(*addr, args).map_err(|e| refuse(spec, advice(&e)))?;
            listeners.open.push(tcp_listener(socket, options));
        }
        ListenAddr::Name { host, port } => {
            let addrs = resolve(host, *port).map_err(|e| refuse(spec, e))?;
            bind_all(spec, &addrs, args, listeners)?;
        }
        ListenAddr::AnyHost(port) => {
            let addrs = [
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), *port),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), *port),
            ];
            bind_all(spec, &addrs, args, listeners)?;
        }
        ListenAddr::Unix(path) => {
            let (socket, file) = bind_unix(path, args).map_err(|e| refuse(spec, e))?;
            listeners.files.push(file);
            listeners.open.push(OpenListener {
                socket,
                options,
                name: spec.addr.to_string(),
            });
        }
        ListenAddr::Fd(fd) => {
            passed.retain(|p| p.fd != *fd);
            listeners
                .open
                .push(inherit(spec, *fd, &spec.addr.to_string())?);
        }
        ListenAddr::FdName(name) => {
            let Some(index) = passed.iter().position(|p| &p.name == name) else {
                return Err(refuse(spec, no_such_name(name, names)));
            };
            let socket = passed.remove(index);
            listeners
                .open
                .push(inherit(spec, socket.fd, &spec.addr.to_string())?);
        }
    }
    Ok(())
}

/// Why `fd://NAME` matches no passed socket (`names`: what systemd passed, if it did).
fn no_such_name(name: &str, names: Option<&[String]>) -> String {
    match names {
        Some(names) => format!(
            "systemd passed no socket named '{name}' (LISTEN_FDNAMES: {}){}",
            names.join(", "),
            if names.iter().any(|n| n == name) {
                "; that one is named by an earlier --bind"
            } else {
                ""
            }
        ),
        None => format!(
            "fd://{name} names a socket systemd passes (FileDescriptorName={name}), but this process was not socket-activated (no LISTEN_FDS for it)"
        ),
    }
}

/// Every address a name resolves to, without repeats, in the resolver's order.
fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let resolved = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{host}': {e}"))?;
    for addr in resolved {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(format!("'{host}' resolves to no address"));
    }
    Ok(addrs)
}

/// Bind each of `addrs` (the addresses of one `-b`). With port 0 the first picks a free port
/// and the others take the same one, so one `-b` is one port. An IPv6 (or IPv4) address this
/// host cannot have is skipped when another address of the same `-b` could be bound.
fn bind_all(
    spec: &ListenerSpec,
    addrs: &[SocketAddr],
    args: &ListenArgs,
    listeners: &mut Listeners,
) -> Result<(), ListenError> {
    let mut port = None;
    let mut bound = 0;
    let mut skipped = Vec::new();
    for addr in addrs {
        let mut addr = *addr;
        if let Some(port) = port {
            addr.set_port(port);
        }
        match bind_tcp(addr, args) {
            Ok(socket) => {
                if addr.port() == 0 {
                    port = local_port(&socket);
                }
                listeners.open.push(tcp_listener(socket, spec.options));
                bound += 1;
            }
            Err(e) if family_unavailable(&e) => skipped.push((addr, e)),
            Err(e) => return Err(refuse(format!("{spec} ({addr})"), advice(&e))),
        }
    }
    if bound == 0 {
        return Err(match skipped.first() {
            Some((addr, e)) => refuse(format!("{spec} ({addr})"), advice(e)),
            None => refuse(spec, "no address to listen on"),
        });
    }
    for (addr, e) in skipped {
        log::info!("{spec}: skipping {addr}, which this host cannot listen on ({e})");
    }
    Ok(())
}

/// The host has no such address family or address (IPv6 turned off, say).
fn family_unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
    )
}

fn advice(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => {
            format!("{e} (is another server using it? pick another port with --bind)")
        }
        Some(libc::EACCES) => format!("{e} (ports below 1024 need root or CAP_NET_BIND_SERVICE)"),
        Some(libc::EADDRNOTAVAIL) => format!("{e} (this host has no such address)"),
        _ => e.to_string(),
    }
}

fn local_port(socket: &Socket) -> Option<u16> {
    socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
}

fn tcp_listener(socket: Socket, options: ListenerOptions) -> OpenListener {
    let name = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map_or_else(|| "?".to_owned(), |a| a.to_string());
    OpenListener {
        socket: socket.into(),
        options,
        name,
    }
}

/// A TCP listener: SO_REUSEADDR (restart without waiting out TIME_WAIT), v6-only for IPv6 (so
/// `[::]` and `0.0.0.0` are two sockets, as `:PORT` binds them), SO_REUSEPORT if asked,
/// non-blocking, close-on-exec.
fn bind_tcp(addr: SocketAddr, args: &ListenArgs) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if args.reuse_port {
        set_reuse_port(socket.as_fd())?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog(args))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn backlog(args: &ListenArgs) -> i32 {
    i32::try_from(args.backlog).unwrap_or(i32::MAX)
}

/// A unix listener at `path`, replacing a stale socket file, with `--socket-mode` applied
/// before it listens (so no client connects under the umask's mode).
fn bind_unix(path: &Path, args: &ListenArgs) -> Result<(OwnedFd, SocketFile), String> {
    clear_stale_socket(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|e| e.to_string())?;
    let addr = SockAddr::unix(path).map_err(|e| format!("not a usable socket path: {e}"))?;
    socket.bind(&addr).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => format!("{e} (does the directory exist?)"),
        io::ErrorKind::PermissionDenied => format!("{e} (may this user create files there?)"),
        _ => e.to_string(),
    })?;
    let meta = fs::symlink_metadata(path).map_err(|e| format!("cannot stat it: {e}"))?;
    // From here on the file is ours: dropping `file` on an error removes it.
    let file = SocketFile {
        path: path.to_owned(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    if let Some(mode) = args.socket_mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| format!("cannot apply --socket-mode {mode:o}: {e}"))?;
    }
    socket.listen(backlog(args)).map_err(|e| e.to_string())?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok((socket.into(), file))
}

/// Remove a socket file nobody accepts on; refuse a live one and anything not a socket.
fn clear_stale_socket(path: &Path) -> Result<(), String> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot stat it: {e}")),
    };
    if !meta.file_type().is_socket() {
        return Err("the path exists and is not a socket; remove it or pick another path".into());
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(
            "another server is accepting on this socket; stop it first or pick another path".into(),
        ),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            log::info!(
                "unix:{}: replacing a stale socket file (nothing accepts on it)",
                path.display()
            );
            fs::remove_file(path).map_err(|e| format!("cannot remove the stale socket: {e}"))
        }
        Err(e) => Err(format!("cannot tell whether a server uses it: {e}")),
    }
}

/// Take over an inherited listening socket (fd://N, or one systemd passed), after checking
/// that it is one.
fn inherit(spec: &ListenerSpec, fd: i32, name: &str) -> Result<OpenListener, ListenError> {
    let socket = claim_inherited(fd).map_err(|e| {
        refuse(
            spec,
            format!("descriptor {fd} is not an inherited open descriptor ({e})"),
        )
    })?;
    listening_stream(socket.as_fd())
        .map_err(|why| refuse(spec, format!("descriptor {fd} cannot be served on: {why}")))?;
    set_nonblocking(socket.as_fd()).map_err(|e| refuse(spec, e))?;
    Ok(OpenListener {
        socket,
        options: spec.options,
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(bind: &[&str]) -> ListenArgs {
        ListenArgs {
            bind: bind.iter().map(|b| b.parse().unwrap()).collect(),
            backlog: 16,
            reuse_port: false,
            socket_mode: None,
            umask: None,
        }
    }

    #[test]
    fn port_zero_on_a_name_gives_every_address_the_same_port() {
        let listeners = open_all(&args(&["localhost:0"]), None).unwrap();
        let ports: Vec<u16> = listeners
            .open
            .iter()
            .map(|l| l.name.rsplit_once(':').unwrap().1.parse().unwrap())
            .collect();
        assert!(!ports.is_empty());
        assert!(ports.iter().all(|&p| p == ports[0] && p != 0), "{ports:?}");
    }

    #[test]
    fn every_listener_option_is_served() {
        // Both options are served: the master refuses `tls` without a certificate.
        assert!(open_all(&args(&["127.0.0.1:0,proxy"]), None).is_ok());
        assert!(open_all(&args(&["127.0.0.1:0,tls"]), None).is_ok());
    }

    #[test]
    fn a_systemd_name_without_activation_says_so() {
        let err = open_all(&args(&["fd://web"]), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot listen on fd://web: ") && err.contains("not socket-activated"),
            "{err}"
        );
    }

    #[test]
    fn a_unix_socket_file_is_removed_when_its_owner_lets_go_unless_replaced() {
        let dir = std::env::temp_dir().join(format!("ws-open-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.sock");
        let spec = format!("unix:{}", path.display());
        let listeners = open_all(&args(&[&spec]), None).unwrap();
        assert!(path.exists());
        drop(listeners);
        assert!(!path.exists());

        let listeners = open_all(&args(&[&spec]), None).unwrap();
        // Another server replaced the file: it is not ours to remove any more.
        fs::remove_file(&path).unwrap();
        fs::write(&path, b"someone else's").unwrap();
        drop(listeners);
        assert!(path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
