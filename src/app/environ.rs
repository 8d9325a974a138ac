//! The request's CGI/WSGI variables (PEP 3333 "environ Variables"), as (name, value) byte slices.
//!
//! Everything is copied into one arena that the connection reuses, so building the environ does
//! not allocate once the arena has grown to the size of a typical request, and the pointers the
//! app receives stay valid however the connection's read buffer moves while the body is read.
//! The `ws_request` handed to the app lives here too, boxed: a deferred request (ABI 1.1) takes
//! its environ along when it parks, and every pointer the app holds — the request, its environ,
//! its `io` (the request's own address) — stays where it was until `close`.

use std::net::SocketAddr;
use std::ops::Range;

use std::ffi::c_void;
use std::ptr::NonNull;

use app_abi::raw::{
    WsBytes, WsHost, WsPair, WsRequest, WS_REQ_MULTIPROCESS, WS_REQ_MULTITHREAD, WS_REQ_RUN_ONCE,
};

use crate::app::parts::{admits, Noted};
use crate::http::grammar::is_field_name;
use crate::http::percent::percent_decode_into;
use crate::http::target::Target;
use crate::listen::{Peer, PeerHost};

/// `SERVER_NAME` on a unix socket when the request names no host (PEP 3333: never empty).
const UNIX_SERVER_NAME: &[u8] = b"localhost";
/// `SERVER_PORT` on a unix socket when the request's host has no port: HTTP's default, as
/// gunicorn does (PEP 3333: never empty).
const UNIX_SERVER_PORT: &[u8] = b"80";

/// `RequestParts::version_minor` of an HTTP/2 stream (`SERVER_PROTOCOL=HTTP/2`).
pub(crate) const HTTP2: u8 = u8::MAX;

/// What the environ is built from.
pub(crate) struct RequestParts<'a, H> {
    pub(crate) method: &'a [u8],
    /// The request-target, split (its authority overrides Host for `SERVER_NAME`).
    pub(crate) target: Target<'a>,
    /// HTTP/1's minor version, or [`HTTP2`] for a stream of an HTTP/2 connection.
    pub(crate) version_minor: u8,
    pub(crate) headers: H,
    /// `None` on a unix socket.
    pub(crate) local: Option<SocketAddr>,
    /// The client: the peer, or whom a PROXY header or a trusted proxy's headers named.
    pub(crate) remote: Peer,
    /// `webserver.url_scheme`: `http`, `https` on a TLS connection, or what a trusted
    /// proxy said.
    pub(crate) url_scheme: &'a [u8],
    /// The peer is not a trusted proxy: `Forwarded`, `X-Forwarded-*` and `X-Real-IP` are left
    /// out, so the app never takes a client's claim for a proxy's.
    pub(crate) strip_forwarding: bool,
    pub(crate) flags: u32,
    /// `AddrVars::new(local, remote)`, already spelled for the connection (the caller passes
    /// it only while `remote` is the connection's peer).
    pub(crate) spelled: Option<&'a AddrVars>,
    /// `SSL_CLIENT_*` on a TLS connection (`crate::tls::ClientCert`).
    pub(crate) client_cert: Option<&'a crate::tls::ClientCert>,
    /// `Some` for an app that reads the parts (`WS_APP_REQUEST_PARTS`), filled first: the
    /// fields are in the parts only, and the environ takes just what was noted there
    /// (`CONTENT_TYPE`, `CONTENT_LENGTH`, the host for `SERVER_NAME`), with no `HTTP_*`.
    pub(crate) noted: Option<Noted<'a>>,
}

/// Room for `SERVER_PORT`, `REMOTE_ADDR` and `REMOTE_PORT`: two ports and the longest
/// address `Display` writes (45 bytes, an IPv6 address ending in dotted IPv4).
const ADDR_TEXT: usize = 5 + 45 + 5;

/// A connection's addresses as the environ spells them (`SERVER_PORT`, `REMOTE_ADDR`,
/// `REMOTE_PORT`), written once per connection instead of once per request.
#[derive(Clone, Debug)]
pub(crate) struct AddrVars {
    text: [u8; ADDR_TEXT],
    /// Where `SERVER_PORT`, `REMOTE_ADDR` and `REMOTE_PORT` end in `text`.
    ends: [u8; 3],
}

impl AddrVars {
    pub(crate) fn new(local: Option<SocketAddr>, remote: Peer) -> AddrVars {
        let mut out = Vec::with_capacity(ADDR_TEXT);
        if let Some(local) = local {
            write_display(&mut out, &local.port());
        }
        let server_port = out.len();
        if let Peer::Tcp(remote) = remote {
            write_display(&mut out, &remote.ip());
        }
        let remote_addr = out.len();
        if let Peer::Tcp(remote) = remote {
            write_display(&mut out, &remote.port());
        }
        let mut text = [0; ADDR_TEXT];
        let len = out.len().min(ADDR_TEXT);
        if let (Some(to), Some(from)) = (text.get_mut(..len), out.get(..len)) {
            to.copy_from_slice(from);
        }
        let end = |at: usize| u8::try_from(at).unwrap_or(u8::MAX);
        AddrVars {
            text,
            ends: [end(server_port), end(remote_addr), end(out.len())],
        }
    }

    fn part(&self, index: usize) -> &[u8] {
        let start = index
            .checked_sub(1)
            .map_or(0, |i| usize::from(self.ends[i]));
        self.text
            .get(start..usize::from(self.ends[index]))
            .unwrap_or_default()
    }
}

/// Where a name or value of the environ is: a constant (every fixed name, and values such as
/// `SCRIPT_NAME` or the flags, never copied), or bytes copied into the arena.
#[derive(Clone, Debug)]
enum Text {
    Fixed(&'static [u8]),
    Arena(Range<usize>),
}

/// A reusable environ: arena bytes, their spans, the pairs handed to the app, and the
/// `ws_request` that points to them.
pub(crate) struct Environ {
    arena: Vec<u8>,
    spans: Vec<(Text, Text)>,
    pairs: Vec<WsPair>,
    /// `REMOTE_ADDR` of the request last built (for the access log).
    remote: PeerHost,
    /// The request last built left its fields to `parts` (no `HTTP_*` here).
    fields_in_parts: bool,
    /// The request's parsed head (ABI 1.3 `request_parts`), filled beside the environ for an
    /// app that reads it, so it parks and travels with the environ.
    pub(crate) parts: crate::app::parts::Parts,
    /// A leaked `Box`, freed in `Drop`: a raw pointer, so moving the environ (a request that
    /// parks) never retags what the app's `ws_request` pointer and `io` point to.
    request: NonNull<WsRequest>,
}

impl Drop for Environ {
    fn drop(&mut self) {
        // SAFETY: `request` came from Box::into_raw in `default` and is freed only here.
        drop(unsafe { Box::from_raw(self.request.as_ptr()) });
    }
}

impl Default for Environ {
    fn default() -> Self {
        Environ {
            arena: Vec::new(),
            spans: Vec::new(),
            pairs: Vec::new(),
            remote: PeerHost(None),
            fields_in_parts: false,
            parts: Default::default(),
            request: NonNull::from(Box::leak(Box::new(WsRequest {
                size: std::mem::size_of::<WsRequest>() as u32,
                flags: 0,
                environ: std::ptr::null(),
                environ_len: 0,
                io: std::ptr::null_mut(),
                host: std::ptr::null(),
                log_ctx: std::ptr::null(),
            }))),
        }
    }
}

// SAFETY: `pairs` only ever points into `arena`, which this struct owns; moving the struct to
// another thread moves the arena with it (a Vec's heap buffer does not move), and `build` rebuilds
// the pointers every time the arena changes. `request` points into `pairs` the same way, to the
// static host vtable and to the app's leaked log tag.
unsafe impl Send for Environ {}

impl Environ {
    /// Builds the variables for one request; the returned pairs borrow `self`.
    pub(crate) fn build<'h, H>(&mut self, parts: RequestParts<'_, H>) -> &[WsPair]
    where
        H: Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
    {
        self.arena.clear();
        self.spans.clear();
        self.pairs.clear();

        self.push(b"REQUEST_METHOD", parts.method);
        self.fixed(b"SCRIPT_NAME", b"");
        let value_start = self.arena.len();
        percent_decode_into(parts.target.path, &mut self.arena);
        self.spans.push((
            Text::Fixed(b"PATH_INFO"),
            Text::Arena(value_start..self.arena.len()),
        ));
        // The path as the client spelled it: ASGI's `raw_path` (PATH_INFO cannot give it back:
        // `%2F` and `/` decode alike).
        self.push(b"webserver.raw_path", parts.target.path);
        self.push(b"QUERY_STRING", parts.target.query);
        let protocol: &[u8] = match parts.version_minor {
            0 => b"HTTP/1.0",
            HTTP2 => b"HTTP/2",
            _ => b"HTTP/1.1",
        };
        self.fixed(b"SERVER_PROTOCOL", protocol);

        self.fields_in_parts = parts.noted.is_some();
        let host = match parts.noted {
            Some(noted) => {
                if let Some(value) = noted.content_type {
                    self.push(b"CONTENT_TYPE", value);
                }
                if let Some(value) = noted.content_length {
                    self.push(b"CONTENT_LENGTH", value);
                }
                if let Some(value) = noted.authority_as_host {
                    self.push(b"HTTP_HOST", value);
                }
                noted.host
            }
            None => self.push_fields(parts.headers, parts.strip_forwarding),
        };

        // SERVER_NAME comes from Host when present (PEP 3333 url reconstruction), else the socket.
        let authority = parts.target.authority.or(host);
        match (authority.map(strip_port), parts.local) {
            (Some(name), _) if !name.is_empty() => self.push(b"SERVER_NAME", name),
            (_, Some(local)) => self.push_display(b"SERVER_NAME", &local.ip()),
            (_, None) => self.fixed(b"SERVER_NAME", UNIX_SERVER_NAME),
        }
        let spelled = parts.spelled;
        match (parts.local, spelled) {
            (Some(_), Some(spelled)) => self.push(b"SERVER_PORT", spelled.part(0)),
            (Some(local), None) => self.push_display(b"SERVER_PORT", &local.port()),
            // A unix socket has no port: the one the client asked for, as gunicorn does.
            (None, _) => match authority.and_then(port_of) {
                Some(port) => self.push(b"SERVER_PORT", port),
                None => self.fixed(b"SERVER_PORT", UNIX_SERVER_PORT),
            },
        }
        match (parts.remote, spelled) {
            (Peer::Tcp(_), Some(spelled)) => {
                self.push(b"REMOTE_ADDR", spelled.part(1));
                self.push(b"REMOTE_PORT", spelled.part(2));
            }
            (Peer::Tcp(remote), None) => {
                self.push_display(b"REMOTE_ADDR", &remote.ip());
                self.push_display(b"REMOTE_PORT", &remote.port());
            }
            // A unix client has no address (gunicorn's choice too): empty, and no port.
            (Peer::Unix, _) => self.fixed(b"REMOTE_ADDR", b""),
        }
        self.remote = parts.remote.host();
        self.push(b"webserver.url_scheme", parts.url_scheme);
        for (name, value) in parts.client_cert.into_iter().flat_map(|c| c.vars()) {
            let name = self.copy(name);
            let value = self.copy(value);
            self.spans.push((name, value));
        }
        self.fixed(
            b"webserver.multithread",
            flag(parts.flags & WS_REQ_MULTITHREAD),
        );
        self.fixed(
            b"webserver.multiprocess",
            flag(parts.flags & WS_REQ_MULTIPROCESS),
        );
        self.fixed(b"webserver.run_once", flag(parts.flags & WS_REQ_RUN_ONCE));

        let base = self.arena.as_ptr();
        let arena_len = self.arena.len();
        let slice = |text: &Text| match text {
            Text::Fixed(bytes) => WsBytes {
                ptr: bytes.as_ptr(),
                len: bytes.len(),
            },
            Text::Arena(r) => {
                debug_assert!(r.end <= arena_len);
                WsBytes {
                    // SAFETY: every span was recorded from this arena's own lengths, so
                    // r.start is within (or one past the end of) the allocation.
                    ptr: unsafe { base.add(r.start) },
                    len: r.end - r.start,
                }
            }
        };
        self.pairs
            .extend(self.spans.iter().map(|(name, value)| WsPair {
                name: slice(name),
                value: slice(value),
            }));
        &self.pairs
    }

    /// No variables at all, instead of [`Environ::build`], when nothing reads them: an app that
    /// reads only the parts (`WS_APP_NO_ENVIRON`) with the access log off. `remote` is the
    /// client as [`Environ::remote_host`] tells it; `fields_in_parts`: the parts were filled.
    pub(crate) fn leave_out(&mut self, remote: Peer, fields_in_parts: bool) -> &[WsPair] {
        self.arena.clear();
        self.spans.clear();
        self.pairs.clear();
        self.remote = remote.host();
        self.fields_in_parts = fields_in_parts;
        &self.pairs
    }

    /// The `HTTP_*` variables (and `CONTENT_TYPE`, `CONTENT_LENGTH`) of `headers`, repeats
    /// joined, under the field policy ([`admits`]); returns the first Host.
    fn push_fields<'h, H>(&mut self, headers: H, strip_forwarding: bool) -> Option<&'h [u8]>
    where
        H: Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
    {
        // Names that may occur more than once (by a one-word hash): only those are looked for
        // among the other fields, so the usual head, every name once, is walked once.
        let (mut seen, mut repeated) = (0u64, 0u64);
        for (name, _) in headers.clone() {
            let bit = name_bit(name);
            repeated |= seen & bit;
            seen |= bit;
        }
        let mut host = None;
        for (index, (name, value)) in headers.clone().enumerate() {
            let maybe_repeated = repeated & name_bit(name) != 0;
            let earlier = headers.clone().take(index);
            if maybe_repeated
                && earlier
                    .into_iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                continue; // already joined into the first occurrence
            }
            let (name_span, underscore) = if is_field_name(name, b"content-type") {
                (Text::Fixed(b"CONTENT_TYPE"), false)
            } else if is_field_name(name, b"content-length") {
                (Text::Fixed(b"CONTENT_LENGTH"), false)
            } else {
                let (span, underscore) = self.cgi_name(name);
                (Text::Arena(span), underscore)
            };
            if !admits(name, underscore, strip_forwarding) {
                if let Text::Arena(span) = name_span {
                    self.arena.truncate(span.start);
                }
                continue;
            }
            if is_field_name(name, b"host") {
                host = Some(value);
            }
            let value_start = self.arena.len();
            if !maybe_repeated {
                self.arena.extend_from_slice(value);
                self.spans
                    .push((name_span, Text::Arena(value_start..self.arena.len())));
                continue;
            }
            // RFC 9110 §5.3: repeated fields combine with ", " (Cookie with "; ", RFC 6265 §5.4).
            let separator: &[u8] = if name.eq_ignore_ascii_case(b"cookie") {
                b"; "
            } else {
                b", "
            };
            // Repeated Content-Length fields were checked equal by the parser: CONTENT_LENGTH is
            // that one number ("5", not "5, 5", which `int()` refuses), as gunicorn passes it.
            let repeats = if name.eq_ignore_ascii_case(b"content-length") {
                1
            } else {
                usize::MAX
            };
            let mut first = true;
            for (_, v) in headers
                .clone()
                .skip(index)
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .take(repeats)
            {
                if !first {
                    self.arena.extend_from_slice(separator);
                }
                first = false;
                self.arena.extend_from_slice(v);
            }
            self.spans
                .push((name_span, Text::Arena(value_start..self.arena.len())));
        }
        host
    }

    /// The `ws_request` for the environ last built, at an address that does not change while
    /// this environ lives (moves included). Its `io` is that address: the request's identity.
    /// `shown`: the app reads the environ; else it gets none (`environ_len` 0), whatever was
    /// built for the access log.
    pub(crate) fn request(
        &mut self,
        flags: u32,
        host: &'static WsHost,
        log_ctx: *const c_void,
        shown: bool,
    ) -> &WsRequest {
        let request = WsRequest {
            size: std::mem::size_of::<WsRequest>() as u32,
            flags,
            environ: self.pairs.as_ptr(),
            environ_len: if shown { self.pairs.len() } else { 0 },
            io: self.io(),
            host,
            log_ctx,
        };
        // SAFETY: `self.request` is this environ's own live allocation; `&mut self` means no
        // request built from it is in progress (a parked request owns its environ).
        unsafe {
            self.request.as_ptr().write(request);
            self.request.as_ref()
        }
    }

    /// The `io` of the request `request` made last.
    pub(crate) fn io(&self) -> *mut c_void {
        self.request.as_ptr() as *mut c_void
    }

    /// `REMOTE_ADDR` of the request last built: the client as the app saw it.
    pub(crate) fn remote_host(&self) -> PeerHost {
        self.remote
    }

    /// Every (name, value) of the request last built, in order.
    pub(crate) fn vars(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans
            .iter()
            .map(|(name, value)| (self.text(name), self.text(value)))
    }

    /// The fields of the request last built when they are in the parts only (an app that
    /// reads them), not among [`Environ::vars`].
    pub(crate) fn fields_apart(&self) -> Option<impl Iterator<Item = (&[u8], &[u8])>> {
        self.fields_in_parts.then(|| self.parts.fields())
    }

    /// The value of variable `name` of the request last built (a linear search: for the access
    /// log, once per atom).
    pub(crate) fn var(&self, name: &[u8]) -> Option<&[u8]> {
        self.spans
            .iter()
            .find(|(n, _)| self.text(n) == name)
            .map(|(_, value)| self.text(value))
    }

    /// `GET /` from 127.0.0.1 with `headers`, for requests made without a client (the ABI
    /// benchmark).
    pub(crate) fn build_synthetic_get(
        &mut self,
        headers: &[(&[u8], &[u8])],
        flags: u32,
        keep_parts: bool,
    ) -> &[WsPair] {
        let root = Target {
            path: b"/",
            query: b"",
            authority: None,
        };
        self.build_synthetic_get_of(root, headers, flags, keep_parts)
    }

    /// `GET target` from 127.0.0.1 with `headers` (`check --probe`); `keep_parts`: the parts too,
    /// for an app that reads them.
    pub(crate) fn build_synthetic_get_of(
        &mut self,
        target: Target<'_>,
        headers: &[(&[u8], &[u8])],
        flags: u32,
        keep_parts: bool,
    ) -> &[WsPair] {
        let mut noted = None;
        if keep_parts {
            let as_sent = match target.query {
                b"" => target.path.to_vec(),
                query => [target.path, b"?", query].concat(),
            };
            noted = Some(self.parts.fill(crate::app::parts::Head {
                version: 11,
                method: b"GET",
                scheme: b"",
                authority: b"",
                target: &as_sent,
                fields: headers.iter().copied(),
                strip_forwarding: false,
                block: &[],
            }));
        }
        self.build(RequestParts {
            method: b"GET",
            target,
            version_minor: 1,
            headers: headers.iter().copied(),
            local: Some(([127, 0, 0, 1], 8888).into()),
            remote: Peer::Tcp(([127, 0, 0, 1], 40000).into()),
            url_scheme: b"http",
            strip_forwarding: false,
            flags,
            spelled: None,
            client_cert: None,
            noted,
        })
    }

    fn text(&self, text: &Text) -> &[u8] {
        match text {
            Text::Fixed(bytes) => bytes,
            Text::Arena(r) => self.arena.get(r.clone()).unwrap_or_default(),
        }
    }

    fn copy(&mut self, bytes: &[u8]) -> Text {
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        Text::Arena(start..self.arena.len())
    }

    /// A variable whose name and value are both constants: nothing is copied.
    fn fixed(&mut self, name: &'static [u8], value: &'static [u8]) {
        self.spans.push((Text::Fixed(name), Text::Fixed(value)));
    }

    fn push(&mut self, name: &'static [u8], value: &[u8]) {
        let value = self.copy(value);
        self.spans.push((Text::Fixed(name), value));
    }

    fn push_display(&mut self, name: &'static [u8], value: &dyn Decimal) {
        let start = self.arena.len();
        write_display(&mut self.arena, value);
        self.spans
            .push((Text::Fixed(name), Text::Arena(start..self.arena.len())));
    }

    /// `HTTP_` and the field name upper-cased with `-` as `_`, appended to the arena and
    /// spelled in place, in one pass that also tells whether the name holds an underscore
    /// (for the policy, [`admits`], without a second pass over the name).
    fn cgi_name(&mut self, name: &[u8]) -> (Range<usize>, bool) {
        let start = self.arena.len();
        self.arena.extend_from_slice(b"HTTP_");
        let from = self.arena.len();
        self.arena.extend_from_slice(name);
        let mut underscore = false;
        for b in self.arena.get_mut(from..).unwrap_or_default() {
            underscore |= *b == b'_';
            // `cgi_byte` without `to_ascii_uppercase`'s extra steps: this loop is per request.
            let lower = b.is_ascii_lowercase();
            *b = if *b == b'-' {
                b'_'
            } else {
                *b - (u8::from(lower) << 5)
            };
        }
        (start..self.arena.len(), underscore)
    }
}

/// A field name's byte as CGI spells it: upper case, `-` as `_`.
pub(crate) fn cgi_byte(b: u8) -> u8 {
    if b == b'-' {
        b'_'
    } else {
        b.to_ascii_uppercase()
    }
}

/// A port or an address as the environ spells it; ports and IPv4 addresses are written without
/// `fmt` (it was a sixth of the environ's cost per request).
trait Decimal {
    fn write_to(&self, out: &mut Vec<u8>);
}

impl Decimal for u16 {
    fn write_to(&self, out: &mut Vec<u8>) {
        write_decimal(out, u32::from(*self));
    }
}

impl Decimal for std::net::IpAddr {
    fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            std::net::IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    write_decimal(out, u32::from(octet));
                }
            }
            std::net::IpAddr::V6(v6) => {
                use std::io::Write;
                // Writing into a Vec cannot fail.
                let _ = write!(out, "{v6}");
            }
        }
    }
}

/// One of 64 bits for a field name, the same for names equal but for ASCII case (from its
/// length and its first and last bytes): two fields whose bits differ have different names.
fn name_bit(name: &[u8]) -> u64 {
    let first = name.first().map_or(0, u8::to_ascii_lowercase);
    let last = name.last().map_or(0, u8::to_ascii_lowercase);
    let hash = (name.len() as u32)
        .wrapping_mul(31)
        .wrapping_add(u32::from(first).wrapping_mul(7))
        .wrapping_add(u32::from(last));
    1 << (hash % 64)
}

fn write_decimal(out: &mut Vec<u8>, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn write_display(out: &mut Vec<u8>, value: &dyn Decimal) {
    value.write_to(out);
}

fn flag(bit: u32) -> &'static [u8] {
    if bit != 0 {
        b"true"
    } else {
        b"false"
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
/// The port of `host:port` or `[v6]:port`, if it has a non-empty one.
fn port_of(host: &[u8]) -> Option<&[u8]> {
    let rest = &host[strip_port(host).len()..];
    rest.strip_prefix(b":").filter(|port| !port.is_empty())
}

fn strip_port(host: &[u8]) -> &[u8] {
    if host.starts_with(b"[") {
        return match host.iter().position(|&b| b == b']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(colon) => &host[..colon],
        None => host,
    }
}

#[cfg(test)]
mod decimal_tests {
    use super::*;

    #[test]
    fn ports_and_addresses_are_spelled_as_display_spells_them() {
        for port in [0u16, 7, 80, 8080, 65535] {
            let mut out = Vec::new();
            write_display(&mut out, &port);
            assert_eq!(out, port.to_string().as_bytes());
        }
        for ip in ["0.0.0.0", "127.0.0.1", "10.200.3.255", "::1", "2001:db8::7"] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            write_display(&mut out, &ip);
            assert_eq!(out, ip.to_string().as_bytes());
        }
    }
}

#[cfg(test)]
#[path = "environ_tests.rs"]
mod tests;
