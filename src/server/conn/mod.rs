//! One client connection: its transport (`transport.rs`: the socket, with TLS layered on it on
//! a TLS listener), its addresses and listener options (on a PROXY-protocol listener, the peer
//! is the client its PROXY header names, read before the first head), its phase (`phase.rs`:
//! a PROXY header or a head awaited, a request served, idle between requests, or a deferred
//! request parked in it), the input no request has consumed yet (`reading.rs`), the output
//! that waits for its client (`output.rs`), and when the coordinator may close it while it
//! waits parked (`deadlines.rs`).
//!
//! Serving the requests in the input is `serve.rs`'s; a parked request's life is
//! `deferred.rs`'s. A connection leaves this type from a named phase: to `server::h2` from
//! `FirstHead` (its first head is HTTP/2's preface, [`Conn::hand_over`]), and to
//! `server::upgraded` from `Serving` (its app took it, ABI 1.2).

mod deadlines;
mod output;
mod phase;
mod reading;
mod transport;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use self::output::Output;
pub(crate) use self::phase::Phase;
use self::reading::Input;
pub(crate) use self::reading::HEAD_READ;
use self::transport::Transport;
use super::listener::Accepted;
use super::slots::Token;
use crate::app::environ::AddrVars;
use crate::http::error::ParseError;
use crate::http::scan::HeadEnd;
use crate::listen::{ListenerOptions, Peer};
use crate::sys::socket::Stream;
use crate::tls::TlsSession;

/// A client connection and the bytes read from it that no request has consumed yet.
pub(crate) struct Conn {
    transport: Transport,
    token: Token,
    peer: Peer,
    /// `None` on a unix socket.
    local: Option<SocketAddr>,
    /// What the listener it came from does besides HTTP (TLS, PROXY protocol).
    options: ListenerOptions,
    phase: Phase,
    input: Input,
    output: Output,
    /// How the poller watches the socket.
    watch: Watch,
    /// When the coordinator may close this connection if it is still parked.
    deadline: Instant,
    /// The addresses as the environ spells them, written for the first request (after any
    /// PROXY header) and reused by the next ones.
    spelled: Option<AddrVars>,
}

/// How the poller watches a connection's socket: registered when first parked, for room to
/// send as well once output had to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Watch {
    Unregistered,
    Input,
    InputAndOutput,
}

/// What the input holds for the next request, after reading what the socket had.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NextHead {
    /// A whole head of this many bytes, parsed into the caller's `RequestHead` in one pass.
    Parsed(usize),
    /// A whole head the scanner found, not parsed yet: `input()[..end.len]`.
    Complete(HeadEnd),
    /// The head is invalid whatever follows (answered with the error's status, then closed).
    Invalid(ParseError),
    /// Not a whole head, and nothing more to read now: park.
    Waiting,
    /// The client closed, the socket failed, or the connection was refused before any HTTP (a
    /// malformed PROXY header, logged): close without an answer.
    Closed,
}

impl Conn {
    pub(crate) fn new(
        accepted: Accepted,
        token: Token,
        now: Instant,
        header_timeout: Duration,
    ) -> Conn {
        let phase = if accepted.options.proxy_protocol {
            Phase::ProxyHeader { since: now }
        } else {
            Phase::FirstHead { since: now }
        };
        Conn {
            transport: Transport::new(accepted.stream),
            token,
            peer: accepted.peer,
            local: accepted.local,
            options: accepted.options,
            phase,
            input: Input::default(),
            output: Output::default(),
            watch: Watch::Unregistered,
            deadline: now + header_timeout,
            spelled: None,
        }
    }

    /// Speak TLS on this connection (before its first read).
    pub(crate) fn set_tls(&mut self, session: TlsSession) {
        self.transport.set_tls(session);
    }

    /// The connection is TLS (`webserver.url_scheme` is `https`).
    pub(crate) fn is_tls(&self) -> bool {
        self.transport.is_tls()
    }

    /// The TLS client's certificate as environ variables (`None`: not TLS).
    pub(crate) fn client_cert(&self) -> Option<&crate::tls::ClientCert> {
        self.transport.client_cert()
    }

    /// Gives the socket (a duplicate of its descriptor: this `Conn` closes its own when
    /// dropped), the TLS session and the unread input to a new owner (`server::h2`), which
    /// takes a connection whose first head is HTTP/2's preface.
    pub(crate) fn hand_over(&mut self) -> io::Result<(Stream, Option<Box<TlsSession>>, Vec<u8>)> {
        debug_assert!(matches!(self.phase, Phase::FirstHead { .. }));
        let (stream, tls) = self.transport.hand_over()?;
        let input = self.input().to_vec();
        self.consume(input.len());
        Ok((stream, tls, input))
    }

    pub(crate) fn token(&self) -> Token {
        self.token
    }

    /// The client's address.
    pub(crate) fn peer(&self) -> Peer {
        self.peer
    }

    /// The connection's addresses as the environ spells them (written on first use).
    pub(crate) fn spelled_addrs(&mut self) -> &AddrVars {
        let (local, peer) = (self.local, self.peer);
        self.spelled
            .get_or_insert_with(|| AddrVars::new(local, peer))
    }

    /// The address the client connected to (`None` on a unix socket).
    pub(crate) fn local(&self) -> Option<SocketAddr> {
        self.local
    }

    /// The options of the listener this connection came from.
    pub(crate) fn listener_options(&self) -> ListenerOptions {
        self.options
    }

    /// The socket, for registering it with the poller.
    pub(crate) fn stream_mut(&mut self) -> &mut Stream {
        self.transport.stream_mut()
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.watch != Watch::Unregistered
    }

    /// The poller watches the socket for input (from its first park on).
    pub(crate) fn mark_registered(&mut self) {
        if self.watch == Watch::Unregistered {
            self.watch = Watch::Input;
        }
    }

    /// Whether the connection is registered for room to send too.
    pub(crate) fn write_interest(&self) -> bool {
        self.watch == Watch::InputAndOutput
    }

    /// The poller watches the socket for room to send as well (once registered).
    pub(crate) fn mark_write_interest(&mut self) {
        self.watch = Watch::InputAndOutput;
    }

    /// TCP keep-alive probes after `idle` without traffic, then every third of it: how a raw
    /// upgraded stream, which the server never pings, finds a peer that vanished.
    pub(crate) fn set_keepalive(&self, idle: Duration) -> io::Result<()> {
        self.transport.set_keepalive(idle)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;
    use crate::http::request::RequestHead;
    use crate::http::scan::Limits;
    use crate::server::Config;

    /// A connection over a real loopback socket, and the client's end.
    pub(crate) fn pair() -> (Conn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let local = server.local_addr().unwrap();
        let accepted = Accepted {
            stream: Stream::from(server),
            peer: Peer::Tcp(peer),
            local: Some(local),
            options: ListenerOptions::default(),
        };
        let conn = Conn::new(accepted, Token(7), Instant::now(), Duration::from_secs(10));
        (conn, client)
    }

    /// Reads until the connection holds `want` bytes or decides; what it decided last.
    pub(crate) fn settle(conn: &mut Conn, want: usize) -> NextHead {
        let limits = Limits::default();
        for _ in 0..1000 {
            conn.mark_readable();
            let next = conn.next_head(&limits, &mut RequestHead::default());
            if next != NextHead::Waiting || conn.input().len() >= want {
                return next;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the socket never delivered {want} bytes");
    }

    #[test]
    fn keepalive_is_set_with_the_idle_time() {
        let (conn, _client) = pair();
        conn.set_keepalive(Duration::from_secs(20)).unwrap();
        let sock = socket2::SockRef::from(conn.transport.stream());
        assert!(sock.keepalive().unwrap());
    }

    pub(crate) fn config(keep_alive: u64, header_timeout: u64, graceful: u64) -> Config {
        Config {
            threads: 1,
            keep_alive: Duration::from_secs(keep_alive),
            header_timeout: Duration::from_secs(header_timeout),
            io_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            request_timeout: None,
            max_requests: None,
            graceful_timeout: Duration::from_secs(graceful),
            max_body: 1 << 20,
            limits: Limits::default(),
            multiprocess: false,
            proxies: Default::default(),
            tls: None,
            statics: None,
            websocket: Default::default(),
            http2: false,
            tls_h2: None,
            http2_limits: Default::default(),
        }
    }
}
