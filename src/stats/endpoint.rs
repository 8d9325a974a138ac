//! The master's statistics listener: a tiny HTTP/1.1 responder run from the master's own loop.
//!
//! Nothing here may stall supervision or be blinded, whatever clients do: every socket is
//! non-blocking and registered with the endpoint's own epoll instance (the master's loop wakes
//! for that one descriptor), so a turn touches only the clients that have news. A request head
//! may be at most `MAX_HEAD` bytes, and each client has `CLIENT_DEADLINE` from its accept to the
//! last byte of its answer, after which it is dropped. No client holds a place another needs:
//! past `MAX_CLIENTS`, or when the master runs out of descriptors, the oldest client is dropped
//! to make room for the newest, so a scrape is answered at once however many silent or
//! trickling clients are connected. One request per connection; every answer says
//! `Connection: close`; what each request gets is `endpoint/answer.rs`.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::sys::epoll::{Epoll, Events};

mod answer;

use answer::{answer, head_end, route, Route};

/// Clients kept at once; the oldest is dropped for a new one past this (a bound on memory:
/// each may hold `MAX_HEAD` bytes).
const MAX_CLIENTS: usize = 1024;
/// The longest request head read; longer ones get 431.
const MAX_HEAD: usize = 8 * 1024;
/// From accept to the last byte of the answer.
const CLIENT_DEADLINE: Duration = Duration::from_secs(5);
/// Bytes asked of a client socket per read.
const READ_CHUNK: usize = 2048;
/// Events taken per `epoll_wait`.
const EVENTS: usize = 256;
/// The listener's epoll token (clients count up from 0).
const LISTENER: u64 = u64::MAX;

/// Where `--stats` listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StatsAddr {
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `HOST:PORT` (a name is resolved; the first address is used).
    Tcp(String),
}

impl FromStr for StatsAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<StatsAddr, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path, e.g. unix:/run/webserver/stats.sock".into());
            }
            return Ok(StatsAddr::Unix(PathBuf::from(path)));
        }
        match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(StatsAddr::Tcp(text.to_owned()))
            }
            _ => Err(format!(
                "'{text}' is neither unix:PATH nor HOST:PORT (e.g. 127.0.0.1:9100)"
            )),
        }
    }
}

/// What a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Page {
    Json,
    Prometheus,
    /// The settings in force (`--print-config`'s text).
    Config,
}

enum Listener {
    Unix {
        listener: UnixListener,
        path: PathBuf,
        /// The socket file's inode: removed at exit only while it is still ours.
        inode: u64,
    },
    Tcp(TcpListener),
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Listener {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Unix { listener, .. } => listener.as_fd(),
            Listener::Tcp(listener) => listener.as_fd(),
        }
    }
}

impl Stream {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Unix(s) => s.as_fd(),
            Stream::Tcp(s) => s.as_fd(),
        }
    }

    /// The answer is complete: the client reads its end of stream before the socket closes.
    fn shutdown_write(&self) {
        let done = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
        };
        if let Err(e) = done {
            // The client may be gone already; closing follows either way.
            log::debug!("stats: shutdown of a client socket: {e}");
        }
    }
}

struct Client {
    stream: Stream,
    /// The request head as read so far.
    head: Vec<u8>,
    /// The answer, once the head is complete; `sent` bytes of it are written.
    answer: Option<Vec<u8>>,
    sent: usize,
    deadline: Instant,
    /// Registered for room to send (after a write would have blocked).
    watching_write: bool,
}

/// What a client's turn came to.
enum Turn {
    /// Keep it (waiting for its head).
    Keep,
    /// Keep it, waiting for room to send the rest of its answer.
    KeepWriting,
    /// Done with it (answered, gone, or broken).
    Drop,
}

/// The statistics listener and its clients.
pub(crate) struct Endpoint {
    listener: Listener,
    epoll: Epoll,
    events: Events,
    clients: HashMap<u64, Client>,
    /// Client tokens in accept order, which is also deadline order; tokens of clients already
    /// gone are skipped when met.
    order: VecDeque<u64>,
    next_token: u64,
}

impl Endpoint {
    /// Listen on `addr`. A unix socket file left by a dead master is replaced; one a live
    /// process listens on, or a path that is not a socket, is refused.
    pub(crate) fn bind(addr: &StatsAddr) -> io::Result<Endpoint> {
        let listener = match addr {
            StatsAddr::Unix(path) => {
                remove_stale_socket(path)?;
                let listener = UnixListener::bind(path)?;
                let inode = fs::metadata(path)?.ino();
                listener.set_nonblocking(true)?;
                Listener::Unix {
                    listener,
                    path: path.clone(),
                    inode,
                }
            }
            StatsAddr::Tcp(text) => {
                let addr = text.to_socket_addrs()?.next().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "the name has no address")
                })?;
                let listener = TcpListener::bind(addr)?;
                listener.set_nonblocking(true)?;
                Listener::Tcp(listener)
            }
        };
        Endpoint::with_listener(listener)
    }

    /// Serve on `fd`, the listener an old master bound at `addr` and handed down (`USR2`). Its
    /// file stays the old master's until this one serves ([`Endpoint::own_socket_file`]): a new
    /// master that fails must not remove it.
    pub(crate) fn inherit(addr: &StatsAddr, fd: OwnedFd) -> io::Result<Endpoint> {
        let listener = match addr {
            StatsAddr::Unix(path) => {
                let listener = UnixListener::from(fd);
                listener.set_nonblocking(true)?;
                Listener::Unix {
                    listener,
                    path: path.clone(),
                    // No file has inode 0.
                    inode: 0,
                }
            }
            StatsAddr::Tcp(_) => {
                let listener = TcpListener::from(fd);
                listener.set_nonblocking(true)?;
                Listener::Tcp(listener)
            }
        };
        Endpoint::with_listener(listener)
    }

    /// The listening socket, to hand down to a new master.
    pub(crate) fn listener_fd(&self) -> BorrowedFd<'_> {
        self.listener.fd()
    }

    /// This master (the new one of an upgrade) serves now: the socket file is its to remove
    /// at exit.
    pub(crate) fn own_socket_file(&mut self) {
        if let Listener::Unix { inode, path, .. } = &mut self.listener {
            match fs::metadata(&*path) {
                Ok(meta) => *inode = meta.ino(),
                Err(e) => log::warn!("stats: {}: {e}", path.display()),
            }
        }
    }

    /// A new master serves on this socket now: leave its file in place at exit.
    pub(crate) fn keep_socket_file(&mut self) {
        if let Listener::Unix { inode, .. } = &mut self.listener {
            // No file has inode 0.
            *inode = 0;
        }
    }

    fn with_listener(listener: Listener) -> io::Result<Endpoint> {
        let epoll = Epoll::new()?;
        epoll.add(listener.fd(), LISTENER)?;
        Ok(Endpoint {
            listener,
            epoll,
            events: Events::with_capacity(EVENTS),
            clients: HashMap::new(),
            order: VecDeque::new(),
            next_token: 0,
        })
    }

    /// Where it listens, for the log (`unix:PATH` or `HOST:PORT`, with the port chosen).
    pub(crate) fn describe(&self) -> String {
        match &self.listener {
            Listener::Unix { path, .. } => format!("unix:{}", path.display()),
            Listener::Tcp(listener) => listener
                .local_addr()
                .map_or_else(|e| format!("? ({e})"), |a| a.to_string()),
        }
    }

    /// The descriptor the master's loop should wake for: the epoll instance, readable while a
    /// connection or a client has news.
    pub(crate) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    /// Drop the clients past their deadline, accept, then read, answer and write what can be
    /// done without waiting; `render` makes a page.
    pub(crate) fn serve(&mut self, render: &mut dyn FnMut(Page) -> String) {
        self.expire(Instant::now());
        // Every turn, not only on the listener's event: an accept that ran out of descriptors
        // left connections in the backlog that no new edge announces.
        self.accept();
        loop {
            if let Err(e) = self.epoll.wait(&mut self.events, Duration::ZERO) {
                log::warn!("stats: cannot wait for clients: {e}");
                return;
            }
            for index in 0..self.events.len() {
                let token = self.events.token(index);
                if token == LISTENER {
                    self.accept();
                } else {
                    self.turn(token, render);
                }
            }
            if self.events.len() < EVENTS {
                return;
            }
        }
    }

    /// Drops the clients whose deadline is past (the oldest come first).
    fn expire(&mut self, now: Instant) {
        while let Some(&token) = self.order.front() {
            match self.clients.get(&token) {
                Some(client) if client.deadline > now => return,
                Some(_) => {
                    log::debug!("stats: a client took longer than {CLIENT_DEADLINE:?}; dropped");
                    self.clients.remove(&token);
                }
                None => {}
            }
            self.order.pop_front();
        }
    }

    /// Drops the oldest client to make room; false if there is none.
    fn drop_oldest(&mut self) -> bool {
        while let Some(token) = self.order.pop_front() {
            if self.clients.remove(&token).is_some() {
                log::debug!("stats: the oldest client dropped to make room for a new one");
                return true;
            }
        }
        false
    }

    fn accept(&mut self) {
        loop {
            let accepted = match &self.listener {
                Listener::Unix { listener, .. } => listener
                    .accept()
                    .and_then(|(s, _)| s.set_nonblocking(true).map(|()| Stream::Unix(s))),
                Listener::Tcp(listener) => listener
                    .accept()
                    .and_then(|(s, _)| s.set_nonblocking(true).map(|()| Stream::Tcp(s))),
            };
            match accepted {
                Ok(stream) => self.admit(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // Out of descriptors: the oldest client's goes to the one waiting.
                    if !self.drop_oldest() {
                        log::debug!("stats: accept failed: {e}");
                        return;
                    }
                }
                Err(e) => {
                    // A connection reset before it was accepted, and the like: try again on
                    // the next turn.
                    log::debug!("stats: accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: Stream) {
        if self.clients.len() >= MAX_CLIENTS {
            self.drop_oldest();
        }
        let token = self.next_token;
        self.next_token += 1;
        // Input already there is reported by the next wait of this same turn.
        if let Err(e) = self.epoll.watch(stream.fd(), token, true, false) {
            log::debug!("stats: cannot watch a client: {e}");
            return;
        }
        self.clients.insert(
            token,
            Client {
                stream,
                head: Vec::new(),
                answer: None,
                sent: 0,
                deadline: Instant::now() + CLIENT_DEADLINE,
                watching_write: false,
            },
        );
        self.order.push_back(token);
    }

    /// Client `token` has news (input, room to send, or its peer left).
    fn turn(&mut self, token: u64, render: &mut dyn FnMut(Page) -> String) {
        let Some(client) = self.clients.get_mut(&token) else {
            return;
        };
        match client.turn(render) {
            Turn::Keep => {}
            Turn::KeepWriting if client.watching_write => {}
            Turn::KeepWriting => match self.epoll.watch(client.stream.fd(), token, false, true) {
                Ok(()) => client.watching_write = true,
                Err(e) => {
                    log::debug!("stats: cannot watch a client: {e}");
                    self.clients.remove(&token);
                }
            },
            Turn::Drop => {
                // Its place in `order` is skipped when met.
                self.clients.remove(&token);
            }
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Listener::Unix { path, inode, .. } = &self.listener {
            // Only our own socket file: another master may have replaced it since.
            if fs::metadata(path).map(|m| m.ino()).ok() == Some(*inode) {
                if let Err(e) = fs::remove_file(path) {
                    log::warn!("cannot remove {}: {e}", path.display());
                }
            }
        }
    }
}

impl Client {
    fn turn(&mut self, render: &mut dyn FnMut(Page) -> String) -> Turn {
        if self.answer.is_none() {
            match self.read_head() {
                Ok(Some(route)) => self.answer = Some(answer(route, render)),
                Ok(None) => return Turn::Keep,
                Err(()) => return Turn::Drop,
            }
        }
        self.write_answer()
    }

    /// Reads what the socket holds; what the request asks for once its head is complete (or
    /// too long). `Err`: the client left or the socket failed.
    fn read_head(&mut self) -> Result<Option<Route>, ()> {
        let mut buf = [0u8; READ_CHUNK];
        loop {
            if let Some(end) = head_end(&self.head) {
                return Ok(Some(route(&self.head[..end])));
            }
            if self.head.len() >= MAX_HEAD {
                return Ok(Some(Route::TooLarge));
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(()),
                Ok(n) => {
                    let room = MAX_HEAD - self.head.len();
                    self.head.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
    }

    fn write_answer(&mut self) -> Turn {
        let Some(answer) = &self.answer else {
            return Turn::Keep;
        };
        while self.sent < answer.len() {
            match self.stream.write(&answer[self.sent..]) {
                Ok(0) => return Turn::Drop,
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Turn::KeepWriting,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Turn::Drop,
            }
        }
        self.stream.shutdown_write();
        Turn::Drop
    }
}

/// A socket file at `path` that nobody listens on any more (a master killed with -9) is
/// removed; a live one, or anything that is not a socket, is an error that says so.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; remove it or pick another path",
                path.display()
            ),
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "{} is in use by a running process (another master?)",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => fs::remove_file(path),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            "unix:/tmp/s.sock".parse::<StatsAddr>(),
            Ok(StatsAddr::Unix("/tmp/s.sock".into()))
        );
        assert_eq!(
            "127.0.0.1:9100".parse::<StatsAddr>(),
            Ok(StatsAddr::Tcp("127.0.0.1:9100".into()))
        );
        assert!("[::1]:9100".parse::<StatsAddr>().is_ok());
        for bad in ["unix:", "9100", "localhost", ":9100", "host:port"] {
            assert!(bad.parse::<StatsAddr>().is_err(), "{bad}");
        }
    }
}
