//! Who the client is behind proxies: `Forwarded` (RFC 7239), or `X-Forwarded-For` with
//! `X-Forwarded-Proto`, read from a request whose peer is trusted (`peer_trust.rs`).
//!
//! The headers list the hops a request passed, the client first; each proxy appends the
//! address it received the request from. Only the entries written by trusted proxies are
//! believed, so the chain is walked from the right (the entry our peer wrote) past every
//! trusted address: the first untrusted hop is the client — whatever a client writes to the
//! left of it is its own claim and ignored. If every hop is trusted, the left-most is the
//! client. This is RFC 7239 §7.1's advice and uvicorn's `ProxyHeadersMiddleware` rule; taking
//! the left-most entry (what a naive reader does) would let any client pick its own address.
//!
//! - A hop that is not an address (`unknown`, an obfuscated `_name`, garbage in
//!   `X-Forwarded-For`) ends the walk like an untrusted one; since it names no client, the
//!   client is the trusted proxy that reported it (no rewrite if that is the peer itself).
//! - The scheme: with `Forwarded`, the `proto` of the chosen element (the scheme the client
//!   used to reach the first trusted proxy). `X-Forwarded-Proto` is aligned with
//!   `X-Forwarded-For` from the right, its left-most value covering the hops before it (so the
//!   usual single value applies to the client). Only `http` and `https` are taken.
//! - When `X-Forwarded-For` is present it decides alone; `Forwarded` is read only without it
//!   (a malformed one changes nothing). Neither order is safe for every proxy — one that
//!   appends to one header passes a client's own copy of the other through unchanged — so the
//!   header nearly every proxy writes wins (nginx, HAProxy's `forwardfor`, cloud load
//!   balancers); behind a proxy that writes only `Forwarded`, make it remove
//!   `X-Forwarded-For`. (The nginx snippet in `deploy/` removes `Forwarded` all the same, as
//!   apps may read it.)
//! - A port is taken when the entry has one (`for="[2001:db8::1]:4711"`, `1.2.3.4:80`);
//!   otherwise it is 0 (unknown).

use std::net::{IpAddr, SocketAddr};

use super::grammar::is_tchar;
use super::peer_trust::{canonical, TrustList};

/// `webserver.url_scheme` as a proxy reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn parse(value: &[u8]) -> Option<Scheme> {
        if value.eq_ignore_ascii_case(b"https") {
            Some(Scheme::Https)
        } else if value.eq_ignore_ascii_case(b"http") {
            Some(Scheme::Http)
        } else {
            None
        }
    }

    pub(crate) fn as_bytes(self) -> &'static [u8] {
        match self {
            Scheme::Http => b"http",
            Scheme::Https => b"https",
        }
    }
}

/// What a trusted peer's headers say about the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Forwarding {
    /// The client's address (port 0 when the proxy gave none); `None`: the peer itself.
    pub(crate) client: Option<SocketAddr>,
    /// The scheme the client used; `None`: this connection's own.
    pub(crate) scheme: Option<Scheme>,
}

/// Headers a proxy sets to describe the client: removed from requests of untrusted peers, so
/// an app (or a framework's own proxy support) never reads a client's claim as a proxy's.
pub(crate) fn is_forwarding_header(name: &[u8]) -> bool {
    const PREFIX: &[u8] = b"x-forwarded-";
    name.eq_ignore_ascii_case(b"forwarded")
        || name.eq_ignore_ascii_case(b"x-real-ip")
        || name
            .get(..PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}

/// One hop of the chain: who the proxy that wrote the entry received the request from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Addr(SocketAddr),
    /// `unknown`, obfuscated, absent or unparseable.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Element {
    node: Node,
    proto: Option<Scheme>,
}

/// Reads the forwarding headers of a request from a trusted peer; allocates only when the
/// request has some.
pub(crate) fn resolve<'h, H>(headers: H, trust: &TrustList) -> Forwarding
where
    H: Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
{
    let named = |want: &'static [u8]| {
        headers
            .clone()
            .filter(move |(name, _)| name.eq_ignore_ascii_case(want))
            .map(|(_, value)| value)
    };
    // Most requests carry none of them: one pass over the names decides that.
    let read = [
        &b"x-forwarded-for"[..],
        &b"forwarded"[..],
        &b"x-forwarded-proto"[..],
    ];
    let any = headers
        .clone()
        .any(|(name, _)| read.iter().any(|r| name.eq_ignore_ascii_case(r)));
    if !any {
        return Forwarding::default();
    }
    if named(b"x-forwarded-for").next().is_some() {
        return from_x_forwarded(
            named(b"x-forwarded-for"),
            named(b"x-forwarded-proto"),
            trust,
        );
    }
    if named(b"forwarded").next().is_some() {
        return from_forwarded(named(b"forwarded"), trust);
    }
    // X-Forwarded-Proto alone (a TLS terminator that does not append addresses).
    Forwarding {
        client: None,
        scheme: list_items(named(b"x-forwarded-proto"))
            .last()
            .and_then(Scheme::parse),
    }
}

/// `X-Forwarded-For` and `X-Forwarded-Proto`, aligned from the right.
fn from_x_forwarded<'h>(
    addresses: impl Iterator<Item = &'h [u8]>,
    protos: impl Iterator<Item = &'h [u8]>,
    trust: &TrustList,
) -> Forwarding {
    let elements: Vec<Element> = list_items(addresses)
        .map(|item| Element {
            node: parse_node(item),
            proto: None,
        })
        .collect();
    let Some(chosen) = choose(&elements, trust) else {
        return Forwarding::default();
    };
    let protos: Vec<&[u8]> = list_items(protos).collect();
    let from_right = elements.len() - 1 - chosen;
    let proto = protos
        .len()
        .checked_sub(1 + from_right)
        .map_or(protos.first(), |i| protos.get(i));
    Forwarding {
        client: client_at(&elements, chosen),
        scheme: proto.and_then(|p| Scheme::parse(p)),
    }
}

/// Every `Forwarded` line, as one list; a malformed one changes nothing.
fn from_forwarded<'h>(values: impl Iterator<Item = &'h [u8]>, trust: &TrustList) -> Forwarding {
    let mut elements = Vec::new();
    for value in values {
        if let Err(why) = parse_forwarded(value, &mut elements) {
            log::debug!(
                "ignored a malformed Forwarded header ({why}): {:?}",
                String::from_utf8_lossy(value)
            );
            return Forwarding::default();
        }
    }
    let Some(chosen) = choose(&elements, trust) else {
        return Forwarding::default();
    };
    Forwarding {
        client: client_at(&elements, chosen),
        scheme: elements[chosen].proto,
    }
}

/// The index of the client's element: the right-most one that is not a trusted address, or
/// the left-most if all are. `None` for an empty chain.
fn choose(elements: &[Element], trust: &TrustList) -> Option<usize> {
    let trusted = |e: &Element| matches!(e.node, Node::Addr(a) if trust.trusts(a.ip()));
    if elements.is_empty() {
        return None;
    }
    Some(elements.iter().rposition(|e| !trusted(e)).unwrap_or(0))
}

/// The client's address: the chosen hop's, or, if it names none, the trusted proxy's to its
/// right (`None`: that is our peer).
fn client_at(elements: &[Element], chosen: usize) -> Option<SocketAddr> {
    match elements.get(chosen)?.node {
        Node::Addr(addr) => Some(addr),
        Node::Unknown => match elements.get(chosen + 1)?.node {
            Node::Addr(addr) => Some(addr),
            Node::Unknown => None,
        },
    }
}

/// The comma-separated, trimmed, non-empty items of every line (repeated fields are one list,
/// RFC 9110 §5.3).
fn list_items<'h>(values: impl Iterator<Item = &'h [u8]>) -> impl Iterator<Item = &'h [u8]> {
    values
        .flat_map(|value| value.split(|&b| b == b','))
        .map(|item| item.trim_ascii())
        .filter(|item| !item.is_empty())
}

/// An address, optionally with a port: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:80`. Anything else is `Unknown`.
fn parse_node(text: &[u8]) -> Node {
    let Ok(text) = std::str::from_utf8(text) else {
        return Node::Unknown;
    };
    let addr = if let Ok(ip) = text.parse::<IpAddr>() {
        Some(SocketAddr::new(ip, 0))
    } else if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        inner
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|ip| SocketAddr::new(ip.into(), 0))
    } else {
        // `v4:port` or `[v6]:port`; a bare v6 with a port is ambiguous and refused by the std.
        text.parse::<SocketAddr>().ok()
    };
    match addr {
        Some(addr) => Node::Addr(SocketAddr::new(canonical(addr.ip()), addr.port())),
        None => Node::Unknown,
    }
}

/// Appends the elements of one `Forwarded` field value (RFC 7239 §4):
/// `1#( [pair] *( ";" [pair] ) )`, `pair = token "=" ( token / quoted-string )`.
fn parse_forwarded(value: &[u8], out: &mut Vec<Element>) -> Result<(), &'static str> {
    let mut rest = value;
    let mut element = Element {
        node: Node::Unknown,
        proto: None,
    };
    let mut seen_for = false;
    let mut seen_proto = false;
    let mut pairs_in_element = 0usize;
    loop {
        rest = rest.trim_ascii_start();
        match rest.first() {
            None => break,
            Some(b',') => {
                // Empty list elements (`a,,b`) are allowed and mean nothing (RFC 9110 §5.6.1).
                if pairs_in_element > 0 {
                    out.push(element);
                }
                element = Element {
                    node: Node::Unknown,
                    proto: None,
                };
                (seen_for, seen_proto, pairs_in_element) = (false, false, 0);
                rest = &rest[1..];
                continue;
            }
            Some(b';') => {
                rest = &rest[1..];
                continue;
            }
            Some(_) => {}
        }
        let name_len = rest.iter().take_while(|&&b| is_tchar(b)).count();
        if name_len == 0 {
            return Err("expected a parameter name");
        }
        let name = &rest[..name_len];
        rest = &rest[name_len..];
        if rest.first() != Some(&b'=') {
            return Err("expected '=' after a parameter name");
        }
        rest = &rest[1..];
        let mut unquoted = Vec::new();
        let value: &[u8] = if rest.first() == Some(&b'"') {
            rest = parse_quoted(&rest[1..], &mut unquoted)?;
            &unquoted
        } else {
            let len = rest.iter().take_while(|&&b| is_tchar(b)).count();
            if len == 0 {
                return Err("expected a parameter value");
            }
            let token = &rest[..len];
            rest = &rest[len..];
            token
        };
        rest = rest.trim_ascii_start();
        if !matches!(rest.first(), None | Some(b';') | Some(b',')) {
            return Err("expected ';' or ',' after a parameter");
        }
        pairs_in_element += 1;
        if name.eq_ignore_ascii_case(b"for") {
            if std::mem::replace(&mut seen_for, true) {
                return Err("'for' twice in one element");
            }
            element.node = parse_node(value);
        } else if name.eq_ignore_ascii_case(b"proto") {
            if std::mem::replace(&mut seen_proto, true) {
                return Err("'proto' twice in one element");
            }
            element.proto = Scheme::parse(value);
        }
    }
    if pairs_in_element > 0 {
        out.push(element);
    }
    Ok(())
}

/// A quoted-string after its opening quote: its unescaped content into `out`; returns what
/// follows the closing quote.
fn parse_quoted<'a>(mut rest: &'a [u8], out: &mut Vec<u8>) -> Result<&'a [u8], &'static str> {
    loop {
        match rest.first() {
            None => return Err("unterminated quoted-string"),
            Some(b'"') => return Ok(&rest[1..]),
            Some(b'\\') => {
                let escaped = *rest.get(1).ok_or("unterminated quoted-string")?;
                if escaped.is_ascii_control() && escaped != b'\t' {
                    return Err("control byte in a quoted-string");
                }
                out.push(escaped);
                rest = &rest[2..];
            }
            Some(&b) if b.is_ascii_control() && b != b'\t' => {
                return Err("control byte in a quoted-string");
            }
            Some(&b) => {
                out.push(b);
                rest = &rest[1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(headers: &[(&str, &str)], trust: &str) -> Forwarding {
        let trust: TrustList = trust.parse().unwrap();
        let headers: Vec<(&[u8], &[u8])> = headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        resolve(headers.iter().copied(), &trust)
    }

    fn client(addr: &str) -> Option<SocketAddr> {
        Some(addr.parse().unwrap())
    }

    const LOCAL: &str = "127.0.0.1,::1";

    #[test]
    fn x_forwarded_for_takes_the_rightmost_untrusted_hop() {
        type Row<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<SocketAddr>);
        let cases: &[Row<'_>] = &[
            (
                &[("X-Forwarded-For", "203.0.113.7")],
                LOCAL,
                client("203.0.113.7:0"),
            ),
            // A client's own claim on the left is ignored.
            (
                &[("X-Forwarded-For", "1.1.1.1, 203.0.113.7")],
                LOCAL,
                client("203.0.113.7:0"),
            ),
            // Trusted proxies are walked past.
            (
                &[(
                    "X-Forwarded-For",
                    "1.1.1.1, 203.0.113.7, 10.0.0.2, 10.0.0.3",
                )],
                "127.0.0.1,10.0.0.0/8",
                client("203.0.113.7:0"),
            ),
            // Every hop trusted: the left-most.
            (
                &[("X-Forwarded-For", "10.0.0.9, 10.0.0.2")],
                "10.0.0.0/8",
                client("10.0.0.9:0"),
            ),
            // Repeated fields are one list.
            (
                &[
                    ("X-Forwarded-For", "1.1.1.1"),
                    ("x-forwarded-for", "203.0.113.8"),
                ],
                LOCAL,
                client("203.0.113.8:0"),
            ),
            (
                &[("X-Forwarded-For", "[2001:db8::1]:4711")],
                LOCAL,
                client("[2001:db8::1]:4711"),
            ),
            (
                &[("X-Forwarded-For", "2001:db8::1")],
                LOCAL,
                client("[2001:db8::1]:0"),
            ),
            (
                &[("X-Forwarded-For", "192.0.2.1:8080")],
                LOCAL,
                client("192.0.2.1:8080"),
            ),
            (
                &[("X-Forwarded-For", "::ffff:192.0.2.1")],
                LOCAL,
                client("192.0.2.1:0"),
            ),
            // Not an address: the proxy that reported it (our peer): no rewrite.
            (&[("X-Forwarded-For", "unknown")], LOCAL, None),
            (
                &[("X-Forwarded-For", "garbage, 10.0.0.2")],
                "127.0.0.1,10.0.0.0/8",
                client("10.0.0.2:0"),
            ),
            (&[("X-Forwarded-For", " , ")], LOCAL, None),
            (&[("Accept", "*/*")], LOCAL, None),
        ];
        for (headers, trust, want) in cases {
            assert_eq!(
                run(headers, trust).client,
                *want,
                "{headers:?} trusting {trust}"
            );
        }
    }

    #[test]
    fn x_forwarded_proto_aligns_from_the_right() {
        let scheme = |xff: &str, xfp: &str, trust: &str| {
            run(
                &[("X-Forwarded-For", xff), ("X-Forwarded-Proto", xfp)],
                trust,
            )
            .scheme
        };
        assert_eq!(scheme("203.0.113.7", "https", LOCAL), Some(Scheme::Https));
        assert_eq!(scheme("203.0.113.7", "HTTP", LOCAL), Some(Scheme::Http));
        assert_eq!(scheme("203.0.113.7", "ftp", LOCAL), None);
        // One value covers every hop.
        assert_eq!(
            scheme("203.0.113.7, 10.0.0.2", "https", "127.0.0.1,10.0.0.0/8"),
            Some(Scheme::Https)
        );
        // Aligned: the client reached the first proxy over https, that one the second over http.
        assert_eq!(
            scheme(
                "203.0.113.7, 10.0.0.2",
                "https, http",
                "127.0.0.1,10.0.0.0/8"
            ),
            Some(Scheme::Https)
        );
        assert_eq!(
            scheme("203.0.113.7, 10.0.0.2", "https, http", LOCAL),
            Some(Scheme::Http)
        );
        // Proto alone (no addresses): the last value.
        assert_eq!(
            run(&[("X-Forwarded-Proto", "https")], LOCAL),
            Forwarding {
                client: None,
                scheme: Some(Scheme::Https)
            }
        );
    }

    #[test]
    fn forwarded_elements() {
        let cases: &[(&str, &str, Option<SocketAddr>, Option<Scheme>)] = &[
            (
                "for=192.0.2.60;proto=https;by=203.0.113.43",
                LOCAL,
                client("192.0.2.60:0"),
                Some(Scheme::Https),
            ),
            (
                "For=\"[2001:db8:cafe::17]:4711\"",
                LOCAL,
                client("[2001:db8:cafe::17]:4711"),
                None,
            ),
            (
                "for=192.0.2.43, for=198.51.100.17",
                LOCAL,
                client("198.51.100.17:0"),
                None,
            ),
            (
                "for=192.0.2.43;proto=https, for=10.0.0.2;proto=http",
                "127.0.0.1,10.0.0.0/8",
                client("192.0.2.43:0"),
                Some(Scheme::Https),
            ),
            ("for=\"_gazonk\"", LOCAL, None, None),
            (
                "for=unknown, for=10.0.0.2",
                "127.0.0.1,10.0.0.0/8",
                client("10.0.0.2:0"),
                None,
            ),
            ("proto=https", LOCAL, None, Some(Scheme::Https)),
            ("for=\"192.0.2.1\" ; proto = \"https\"", LOCAL, None, None), // BWS around '=' is not allowed
            (
                "for=192.0.2.1;;proto=https,,",
                LOCAL,
                client("192.0.2.1:0"),
                Some(Scheme::Https),
            ),
            (
                "host=\"a\\\"b\";for=192.0.2.2",
                LOCAL,
                client("192.0.2.2:0"),
                None,
            ),
        ];
        for (value, trust, want_client, want_scheme) in cases {
            let got = run(&[("Forwarded", value)], trust);
            assert_eq!(
                (got.client, got.scheme),
                (*want_client, *want_scheme),
                "{value}"
            );
        }
    }

    #[test]
    fn malformed_forwarded_changes_nothing_and_x_forwarded_for_wins() {
        for bad in [
            "for",
            "for=",
            "for=1.2.3.4 x",
            "for=\"1.2.3.4",
            "for=1.2.3.4;for=5.6.7.8",
            "proto=https;proto=http",
            "=1.2.3.4",
            "for=\"a\x01\"",
        ] {
            let got = run(&[("Forwarded", bad), ("X-Forwarded-Proto", "https")], LOCAL);
            assert_eq!(got, Forwarding::default(), "{bad:?}");
        }
        let got = run(
            &[
                ("Forwarded", "for=192.0.2.9"),
                ("X-Forwarded-For", "203.0.113.7"),
                ("X-Forwarded-Proto", "https"),
            ],
            LOCAL,
        );
        assert_eq!(got.client, client("203.0.113.7:0"));
        assert_eq!(got.scheme, Some(Scheme::Https));
    }

    #[test]
    fn forwarding_header_names() {
        for yes in [
            "Forwarded",
            "X-Forwarded-For",
            "x-forwarded-proto",
            "X-FORWARDED-HOST",
            "X-Real-IP",
        ] {
            assert!(is_forwarding_header(yes.as_bytes()), "{yes}");
        }
        for no in ["X-Forwarded", "Forwarded-For", "Host", "X-Forward-For"] {
            assert!(!is_forwarding_header(no.as_bytes()), "{no}");
        }
    }
}
