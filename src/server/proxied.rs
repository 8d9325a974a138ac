//! Running behind proxies, as the serving path sees it: whose word about the client it takes
//! and what a request's client and scheme are then. The parsing is `http::forwarded`,
//! `http::peer_trust` and `http::proxy_protocol`; this file only applies them.
//!
//! Two sources can replace a connection's peer. A PROXY protocol header (the listener's
//! `proxy` option, which the master sets on every listener for `--proxy-protocol`; read by
//! `Conn` before the first request) replaces it
//! for the whole connection. Then, per request, a peer in `--forwarded-allow-ips` may name the
//! client and scheme in `Forwarded` / `X-Forwarded-*`; any other peer's such headers are
//! removed before the app sees them. `REMOTE_ADDR`, `REMOTE_PORT`, `webserver.url_scheme` and
//! the access log show the result.

use crate::http::forwarded::{self, Scheme};
use crate::http::peer_trust::TrustList;
use crate::listen::{ListenerOptions, Peer};

/// The proxy options the serving loop applies.
#[derive(Clone, Debug, Default)]
pub(crate) struct Proxies {
    /// `--forwarded-allow-ips`.
    pub(crate) trusted: TrustList,
    /// `--proxy-allow-from`: who may send a PROXY header on a `proxy` listener.
    pub(crate) proxy_senders: TrustList,
}

impl Proxies {
    /// A connection from `peer` on a listener with `options` may be served: on a `proxy`
    /// listener only a `--proxy-allow-from` peer may speak (its header names the client); any
    /// other is logged (its address only, so repeats are summarised) and must be closed.
    pub(crate) fn admits(&self, peer: Peer, options: ListenerOptions) -> bool {
        if !options.proxy_protocol {
            return true;
        }
        let allowed = match peer {
            Peer::Tcp(addr) => self.proxy_senders.trusts(addr.ip()),
            Peer::Unix => self.proxy_senders.trusts_unix(),
        };
        if !allowed {
            log::warn!(
                "closed a connection from {} on a PROXY-protocol listener: not in --proxy-allow-from",
                peer.host()
            );
        }
        allowed
    }
}

/// Who a request comes from, once the proxies had their say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Client {
    /// `REMOTE_ADDR` / `REMOTE_PORT`.
    pub(crate) remote: Peer,
    /// `webserver.url_scheme`.
    pub(crate) scheme: &'static [u8],
    /// The peer is not trusted: its forwarding headers must not reach the app.
    pub(crate) strip_forwarding: bool,
}

/// The client of a request that arrived from `peer` (after any PROXY header) with `headers`,
/// over TLS or not (the scheme unless a trusted proxy says otherwise). Allocates nothing unless
/// a trusted peer sent forwarding headers.
pub(crate) fn client<'h, H>(peer: Peer, tls: bool, headers: H, proxies: &Proxies) -> Client
where
    H: Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
{
    let connection_scheme = if tls { Scheme::Https } else { Scheme::Http };
    let trusted = match peer {
        Peer::Tcp(addr) => proxies.trusted.trusts(addr.ip()),
        // A unix socket's peer has no address: trusted only when `unix` is listed.
        Peer::Unix => proxies.trusted.trusts_unix(),
    };
    if !trusted {
        return Client {
            remote: peer,
            scheme: connection_scheme.as_bytes(),
            strip_forwarding: true,
        };
    }
    let said = forwarded::resolve(headers, &proxies.trusted);
    Client {
        remote: said.client.map_or(peer, Peer::Tcp),
        scheme: said.scheme.unwrap_or(connection_scheme).as_bytes(),
        strip_forwarding: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_peers_name_the_client_and_others_are_stripped() {
        let headers: [(&[u8], &[u8]); 2] = [
            (b"X-Forwarded-For", b"198.51.100.4"),
            (b"X-Forwarded-Proto", b"https"),
        ];
        let proxies = Proxies::default();
        let local = Peer::Tcp("127.0.0.1:5000".parse().unwrap());
        let got = client(local, false, headers.iter().copied(), &proxies);
        assert_eq!(
            got,
            Client {
                remote: Peer::Tcp("198.51.100.4:0".parse().unwrap()),
                scheme: b"https",
                strip_forwarding: false,
            }
        );
        let outsider = Peer::Tcp("203.0.113.1:5000".parse().unwrap());
        let got = client(outsider, false, headers.iter().copied(), &proxies);
        assert_eq!(
            got,
            Client {
                remote: outsider,
                scheme: b"http",
                strip_forwarding: true,
            }
        );
        // Unix peers: only when listed.
        assert!(client(Peer::Unix, false, headers.iter().copied(), &proxies).strip_forwarding);
        let unix = Proxies {
            trusted: "unix".parse().unwrap(),
            ..Proxies::default()
        };
        let got = client(Peer::Unix, false, headers.iter().copied(), &unix);
        assert_eq!(got.remote, Peer::Tcp("198.51.100.4:0".parse().unwrap()));
        assert!(!got.strip_forwarding);
    }

    #[test]
    fn only_allowed_peers_may_speak_on_a_proxy_listener() {
        let proxies = Proxies {
            proxy_senders: "10.0.0.0/8".parse().unwrap(),
            ..Proxies::default()
        };
        let proxy = ListenerOptions {
            proxy_protocol: true,
            ..ListenerOptions::default()
        };
        let inside = Peer::Tcp("10.1.2.3:4000".parse().unwrap());
        let outside = Peer::Tcp("192.0.2.1:4000".parse().unwrap());
        assert!(proxies.admits(inside, proxy));
        assert!(!proxies.admits(outside, proxy));
        assert!(!proxies.admits(Peer::Unix, proxy));
        // Plain listeners: everyone.
        assert!(proxies.admits(outside, ListenerOptions::default()));
    }
}
