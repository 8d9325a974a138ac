//! The request head → `http::Request` conversion, from the parts the server parsed (ABI 1.3) or
//! from an older server's environ: method, URI, version and headers, as hyper hands them over.

use bytes::BufMut;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};
use std::cell::Cell;

/// Why an environ did not make an `http::Request` (the server validated the request already, so
/// this means a server/adapter mismatch rather than a bad client).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BuildError {
    Method,
    Uri(String),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Method => f.write_str("REQUEST_METHOD is not an HTTP method token"),
            BuildError::Uri(uri) => write!(f, "PATH_INFO/QUERY_STRING do not form a URI: {uri:?}"),
        }
    }
}

/// The longest header name converted on the stack (longer ones are rare and take a `Vec`).
const STACK_NAME: usize = 64;

/// Header fields gathered on the stack in the environ's one pass (more spill into a `Vec`).
const STACK_FIELDS: usize = 24;

/// The environ's header variables, (CGI name, value), in order: gathered in the one pass over
/// the environ that also picks the method, target and version, so the environ is walked once.
struct Fields<'a> {
    stack: [(&'a [u8], &'a [u8]); STACK_FIELDS],
    len: usize,
    spilled: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> Fields<'a> {
    fn new() -> Self {
        Fields {
            stack: [(&[], &[]); STACK_FIELDS],
            len: 0,
            spilled: Vec::new(),
        }
    }

    fn push(&mut self, field: (&'a [u8], &'a [u8])) {
        match self.stack.get_mut(self.len) {
            Some(slot) => {
                *slot = field;
                self.len += 1;
            }
            None => self.spilled.push(field),
        }
    }

    fn count(&self) -> usize {
        self.len + self.spilled.len()
    }

    fn iter(&self) -> impl Iterator<Item = &(&'a [u8], &'a [u8])> + Clone {
        self.stack[..self.len].iter().chain(&self.spilled)
    }
}

/// The request head as the environ describes it, and what the caller decides on from it.
pub(crate) struct Head {
    /// The body is attached by the caller.
    pub(crate) request: Request<()>,
    /// A body follows: a length other than 0, a transfer coding, or an HTTP/2 stream.
    pub(crate) has_body: bool,
    /// An `Upgrade` field came (what a WebSocket handshake needs; most requests have none, so
    /// they skip the upgrade checks without a header-map lookup).
    pub(crate) has_upgrade: bool,
    /// An `Expect` field came (the body is then not read ahead: the client waits for a 100).
    pub(crate) has_expect: bool,
    /// The first Content-Length's value, read on the walk over the fields (no header-map
    /// lookup afterwards): the request body's exact size.
    pub(crate) length: Option<u64>,
}

impl Head {
    /// `request` with what its fields said; `stream_body`: a body may follow whatever they say.
    fn new(request: Request<()>, framing: Framing, stream_body: bool) -> Head {
        Head {
            request,
            has_body: stream_body || framing.body_field,
            has_upgrade: framing.upgrade,
            has_expect: framing.expect,
            length: framing.length,
        }
    }
}

/// What a head's fields say of its body and upgrade: noted by name (`http`'s constants, an
/// enum comparison each) as the header map is filled, so that no field is looked up again.
#[derive(Default)]
struct Framing {
    /// A Content-Length other than 0, or a Transfer-Encoding.
    body_field: bool,
    upgrade: bool,
    expect: bool,
    /// The first Content-Length's value.
    length: Option<u64>,
    length_seen: bool,
}

impl Framing {
    fn note(&mut self, name: &HeaderName, value: &[u8]) {
        use http::header::{CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING, UPGRADE};
        if *name == CONTENT_LENGTH {
            self.body_field |= !value.iter().all(|&b| b == b'0' || b == b' ');
            if !self.length_seen {
                self.length_seen = true;
                self.length = length_of(value);
            }
        } else if *name == TRANSFER_ENCODING {
            self.body_field = true;
        } else if *name == UPGRADE {
            self.upgrade = true;
        } else if *name == EXPECT {
            self.expect = true;
        }
    }
}

/// A Content-Length value as a number (`None`: not one): decimal digits, blanks around them.
fn length_of(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.wrapping_sub(b'0');
        (digit <= 9).then_some(())?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// The request head as the environ describes it ([`Head`]), for a server without
/// `request_parts` (ABI 1.3).
///
/// The environ is walked once, and the request built by [`assemble`]. The usual header names
/// are `http`'s constants, not parsed again.
pub(crate) fn head_from_environ<'a>(
    vars: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<Head, BuildError> {
    let mut method = &b""[..];
    let mut path = &b"/"[..];
    let mut query = &b""[..];
    let mut version = Version::HTTP_11;
    let mut fields = Fields::new();
    let mut value_bytes = 0;
    for (name, value) in vars {
        match name {
            b"REQUEST_METHOD" => method = value,
            b"PATH_INFO" => path = value,
            b"QUERY_STRING" => query = value,
            b"SERVER_PROTOCOL" if value == b"HTTP/1.0" => version = Version::HTTP_10,
            b"SERVER_PROTOCOL" if value == b"HTTP/2" => version = Version::HTTP_2,
            b"CONTENT_LENGTH" | b"CONTENT_TYPE" => {
                value_bytes += value.len();
                fields.push((name, value));
            }
            _ if name.starts_with(b"HTTP_") => {
                value_bytes += value.len();
                fields.push((name, value));
            }
            _ => {}
        }
    }
    let method = Method::from_bytes(method).map_err(|_| BuildError::Method)?;
    let (request, framing) = assemble(
        (method, version),
        origin_form_len(path, query),
        |shared| origin_form(path, query, false, shared),
        (fields.iter().copied(), fields.count(), value_bytes),
        (header_name, true),
    )
    .map_err(|target| BuildError::Uri(String::from_utf8_lossy(&target).into_owned()))?;
    // An HTTP/2 request's body is framed by the stream (a gRPC call has neither a
    // Content-Length nor a Transfer-Encoding): there may be one.
    Ok(Head::new(request, framing, version == Version::HTTP_2))
}

/// The request head from the parts the server parsed (ABI 1.3 `request_parts`), as hyper makes
/// it: the target as sent (HTTP/2: `scheme://authority` + `:path`, hyper's absolute URI), the
/// fields one by one as received. `None` when the target is not one `http::Uri` holds (hyper
/// answers those 400; the server accepted them): the caller then takes
/// [`head_from_escaped_parts`].
pub(crate) fn head_from_parts(parts: &app_abi::Parts<'_>) -> Result<Option<Head>, BuildError> {
    let method = Method::from_bytes(parts.method).map_err(|_| BuildError::Method)?;
    let version = version_of(parts);
    // The room the values take; what the fields say is noted as `assemble` adds them.
    let value_bytes = parts.fields().map(|(_, value)| value.len()).sum::<usize>();
    let absolute = version == Version::HTTP_2
        && !parts.scheme.is_empty()
        && !parts.authority.is_empty()
        && parts.target.starts_with(b"/");
    let origin = absolute.then_some((parts.scheme, parts.authority));
    let target = match parts.target {
        b"" => &b"/"[..],
        target => target,
    };
    let target_len =
        origin.map_or(0, |(scheme, authority)| scheme.len() + 3 + authority.len()) + target.len();
    let write_target = |shared: &mut &mut [u8]| {
        if let Some((scheme, authority)) = origin {
            shared.put_slice(scheme);
            shared.put_slice(b"://");
            shared.put_slice(authority);
        }
        shared.put_slice(target);
    };
    let built = assemble(
        (method, version),
        target_len,
        write_target,
        (parts.fields(), parts.fields().len(), value_bytes),
        // The parts' values are valid as `http` defines them (the header's "Request parts"),
        // so they are not checked byte by byte again, as hyper does not after its parser.
        (field_name, false),
    );
    // An HTTP/2 request's body is framed by the stream (a gRPC call has neither a
    // Content-Length nor a Transfer-Encoding): there may be one.
    let stream_body = version == Version::HTTP_2;
    Ok(built
        .ok()
        .map(|(request, framing)| Head::new(request, framing, stream_body)))
}

/// The request head from the parts, for a target `http::Uri` refuses as sent: the target in
/// origin form with the bytes a `Uri` cannot hold percent-encoded ([`escaped_target`]), and
/// over HTTP/2 `:authority` as the Host field when none came (the URI holds no authority here,
/// and Host is then the only place a router finds it). The environ is not read: an app
/// exported with `WS_APP_NO_ENVIRON` has none.
pub(crate) fn head_from_escaped_parts(parts: &app_abi::Parts<'_>) -> Result<Head, BuildError> {
    let method = Method::from_bytes(parts.method).map_err(|_| BuildError::Method)?;
    let version = version_of(parts);
    let no_host = parts
        .fields()
        .all(|(name, _)| !name.eq_ignore_ascii_case(b"host"));
    let authority_as_host = (version == Version::HTTP_2 && no_host && !parts.authority.is_empty())
        .then_some((&b"host"[..], parts.authority));
    let fields = authority_as_host.into_iter().chain(parts.fields());
    let value_bytes = fields.clone().map(|(_, value)| value.len()).sum::<usize>();
    let count = fields.clone().count();
    let (request, framing) = assemble(
        (method, version),
        3 * parts.target.len() + 1,
        |shared| escaped_target(parts.target, shared),
        (fields, count, value_bytes),
        (field_name, true),
    )
    .map_err(|target| BuildError::Uri(String::from_utf8_lossy(&target).into_owned()))?;
    Ok(Head::new(request, framing, version == Version::HTTP_2))
}

fn version_of(parts: &app_abi::Parts<'_>) -> Version {
    match parts.version {
        10 => Version::HTTP_10,
        20 => Version::HTTP_2,
        _ => Version::HTTP_11,
    }
}

/// The `http::Request` from its method and version, its target (written by `target`, at most
/// `target_len` bytes) and its `count` fields, whose values hold `value_bytes` (names converted
/// by `name`; one that gives `None` is left out; values checked as `http` does unless
/// `checked_values` is false), and what the fields say of the body ([`Framing`]). The target and every value are copied once, into one shared
/// buffer that the URI and the header values then point into (as hyper does
/// with its read buffer): one allocation for a head up to [`INLINE_HEAD`] bytes, two for a
/// larger one, however many headers it has (and the header map's own, unless it is recycled).
/// `Err` holds a target `http::Uri` refuses.
fn assemble<'f>(
    (method, version): (Method, Version),
    target_len: usize,
    target: impl FnOnce(&mut &mut [u8]),
    (fields, count, value_bytes): (
        impl Iterator<Item = (&'f [u8], &'f [u8])> + Clone,
        usize,
        usize,
    ),
    (name, checked_values): (impl Fn(&[u8]) -> Option<HeaderName>, bool),
) -> Result<(Request<()>, Framing), bytes::Bytes> {
    let room = target_len + value_bytes;
    // Target first, then the values; `(target's length, the whole length)`.
    let fill = |buf: &mut [u8]| {
        let size = buf.len();
        let mut rest = buf;
        target(&mut rest);
        let target_len = size - rest.len();
        for (_, value) in fields.clone() {
            rest.put_slice(value);
        }
        (target_len, size - rest.len())
    };
    let (target_len, shared) = if room <= SMALL_HEAD {
        InlineHead::<SMALL_HEAD>::shared(fill)
    } else if room <= INLINE_HEAD {
        InlineHead::<INLINE_HEAD>::shared(fill)
    } else {
        let mut buf = vec![0; room];
        let (target_len, len) = fill(&mut buf);
        buf.truncate(len);
        (target_len, bytes::Bytes::from(buf))
    };
    let uri = Uri::from_maybe_shared(shared.slice(..target_len))
        .map_err(|_| shared.slice(..target_len))?;
    let mut map = spare_headers(count);
    let mut framing = Framing::default();
    let mut at = target_len;
    for (field, raw_value) in fields {
        let range = at..at + raw_value.len();
        at = range.end;
        let Some(name) = name(field) else {
            continue;
        };
        framing.note(&name, raw_value);
        // From the environ (an older server), the values are checked again: the server refuses
        // CR/LF/NUL in them, so this only skips what `http` stricter-than-RFC rejects; a
        // skipped header is better than a refused request.
        let value = shared.slice(range);
        let value = if checked_values {
            match HeaderValue::from_maybe_shared(value) {
                Ok(value) => value,
                Err(_) => continue,
            }
        } else {
            // SAFETY: the one requirement is that the bytes are a valid header value, which the
            // ABI promises of the parts' fields (the header's "Request parts": no control byte
            // but HTAB, `http`'s own rule; the server checked them while it parsed the head).
            unsafe { HeaderValue::from_maybe_shared_unchecked(value) }
        };
        map.append(name, value);
    }
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.version_mut() = version;
    // The defaults replaced here own nothing (`HeaderMap::new` does not allocate, the default
    // URI is `/` in static memory): not dropping them saves their drop code on every request.
    std::mem::forget(std::mem::replace(request.uri_mut(), uri));
    std::mem::forget(std::mem::replace(request.headers_mut(), map));
    Ok((request, framing))
}

/// Request heads (target and field values) up to this many bytes are copied into one
/// allocation, beside its reference count; a larger one takes two (its buffer, then the count
/// `Bytes` adds when the buffer is first shared).
const INLINE_HEAD: usize = 512;

/// Heads up to this many bytes (a client that sends little but Host: API clients, health
/// checks, load generators) take a smaller inline copy: less to zero and to move.
const SMALL_HEAD: usize = 128;

/// A small request head's bytes, owned by the `Bytes` the URI and the header values share.
struct InlineHead<const N: usize> {
    len: usize,
    bytes: [u8; N],
}

impl<const N: usize> InlineHead<N> {
    /// The bytes `fill` writes (it returns the target's length and the whole length) as one
    /// `Bytes`, with the target's length.
    fn shared(fill: impl FnOnce(&mut [u8]) -> (usize, usize)) -> (usize, bytes::Bytes) {
        let mut head = InlineHead {
            len: 0,
            bytes: [0; N],
        };
        let (target_len, len) = fill(&mut head.bytes);
        head.len = len;
        // The owner is moved into the allocation that also holds the reference count.
        (target_len, bytes::Bytes::from_owner(head))
    }
}

impl<const N: usize> AsRef<[u8]> for InlineHead<N> {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A response's header map is kept only up to this many entries' room: a larger one is freed.
const SPARE_HEADERS_CAPACITY: usize = 64;

thread_local! {
    /// The last response's header map on this thread, emptied, for the next request's fields
    /// (hyper reuses a connection's header map the same way): its two allocations serve every
    /// request of the thread instead of being made and freed per request.
    static SPARE_HEADERS: Cell<Option<http::HeaderMap>> = const { Cell::new(None) };
}

/// Keeps `headers` (a response's, sent) for the next request built on this thread.
pub(crate) fn recycle_headers(mut headers: http::HeaderMap) {
    if headers.capacity() > SPARE_HEADERS_CAPACITY {
        return;
    }
    headers.clear();
    // A thread that is ending has no spare to keep (its thread-local is gone).
    let _ = SPARE_HEADERS.try_with(|spare| spare.set(Some(headers)));
}

/// An empty header map with room for `fields` entries: the spare one if this thread has it.
fn spare_headers(fields: usize) -> http::HeaderMap {
    match SPARE_HEADERS.try_with(Cell::take).ok().flatten() {
        Some(mut map) => {
            map.reserve(fields);
            map
        }
        None => http::HeaderMap::with_capacity(fields),
    }
}

/// A field name from the parts as a header name (`None`: not a valid one). HTTP/2's are lower
/// case, HTTP/1 clients' mostly lower case or capitalised as the RFCs spell them: the usual ones
/// are found by an exact comparison as `http`'s constants, without `http` mapping every byte
/// through its table first.
fn field_name(name: &[u8]) -> Option<HeaderName> {
    use http::header::*;
    Some(match name {
        b"host" | b"Host" => HOST,
        b"user-agent" | b"User-Agent" => USER_AGENT,
        b"accept" | b"Accept" => ACCEPT,
        b"accept-encoding" | b"Accept-Encoding" => ACCEPT_ENCODING,
        b"accept-language" | b"Accept-Language" => ACCEPT_LANGUAGE,
        b"content-type" | b"Content-Type" => CONTENT_TYPE,
        b"content-length" | b"Content-Length" => CONTENT_LENGTH,
        b"te" => TE,
        b"connection" | b"Connection" => CONNECTION,
        b"cookie" | b"Cookie" => COOKIE,
        b"authorization" | b"Authorization" => AUTHORIZATION,
        _ => return HeaderName::from_bytes(name).ok(),
    })
}

/// `CONTENT_TYPE` → `content-type`, `HTTP_X_FORWARDED_FOR` → `x-forwarded-for` (the CGI spelling
/// back to a header name; `HeaderName` lower-cases). `None` if it is no valid name.
fn header_name(field: &[u8]) -> Option<HeaderName> {
    known_header_name(field).or_else(|| converted_header_name(field))
}

/// [`header_name`] by converting the spelling (`_` → `-`) and parsing it.
fn converted_header_name(field: &[u8]) -> Option<HeaderName> {
    let cgi = field.strip_prefix(b"HTTP_").unwrap_or(field);
    let dashes = |b: &u8| if *b == b'_' { b'-' } else { *b };
    if cgi.len() <= STACK_NAME {
        let mut buf = [0u8; STACK_NAME];
        for (out, b) in buf.iter_mut().zip(cgi) {
            *out = dashes(b);
        }
        HeaderName::from_bytes(&buf[..cgi.len()]).ok()
    } else {
        HeaderName::from_bytes(&cgi.iter().map(dashes).collect::<Vec<u8>>()).ok()
    }
}

/// The fields most requests carry, by their CGI names: `http`'s constants, which cost neither a
/// conversion nor a lookup (`header_name` would give the same names, more slowly).
fn known_header_name(field: &[u8]) -> Option<HeaderName> {
    use http::header::*;
    Some(match field {
        b"HTTP_HOST" => HOST,
        b"HTTP_USER_AGENT" => USER_AGENT,
        b"HTTP_ACCEPT" => ACCEPT,
        b"HTTP_ACCEPT_ENCODING" => ACCEPT_ENCODING,
        b"HTTP_ACCEPT_LANGUAGE" => ACCEPT_LANGUAGE,
        b"HTTP_CONNECTION" => CONNECTION,
        b"HTTP_COOKIE" => COOKIE,
        b"HTTP_AUTHORIZATION" => AUTHORIZATION,
        b"HTTP_CACHE_CONTROL" => CACHE_CONTROL,
        b"HTTP_ORIGIN" => ORIGIN,
        b"HTTP_REFERER" => REFERER,
        b"HTTP_UPGRADE" => UPGRADE,
        b"HTTP_TE" => TE,
        b"HTTP_TRANSFER_ENCODING" => TRANSFER_ENCODING,
        b"HTTP_IF_NONE_MATCH" => IF_NONE_MATCH,
        b"HTTP_IF_MODIFIED_SINCE" => IF_MODIFIED_SINCE,
        b"HTTP_RANGE" => RANGE,
        b"HTTP_SEC_WEBSOCKET_KEY" => SEC_WEBSOCKET_KEY,
        b"HTTP_SEC_WEBSOCKET_VERSION" => SEC_WEBSOCKET_VERSION,
        b"HTTP_SEC_WEBSOCKET_PROTOCOL" => SEC_WEBSOCKET_PROTOCOL,
        b"HTTP_SEC_WEBSOCKET_EXTENSIONS" => SEC_WEBSOCKET_EXTENSIONS,
        b"CONTENT_TYPE" => CONTENT_TYPE,
        b"CONTENT_LENGTH" => CONTENT_LENGTH,
        _ => return None,
    })
}

/// `path?query` with the path percent-encoded again: PATH_INFO is decoded, but a service (axum's
/// router, its `Path` extractor) expects the request target as sent. Bytes a path may hold
/// literally (RFC 3986 `pchar` and `/`) stay; every other byte — `%` itself, space, `?`, `#`,
/// non-ASCII — becomes `%XX`. What cannot be recovered: a `%2F` the client sent arrives as `/`.
///
/// The query arrives as the client sent it and stays so, as hyper hands it over, non-ASCII
/// UTF-8 included (`?q=café`), except for the bytes `http::Uri` cannot hold: `"`, `<`, `>` (and
/// non-ASCII bytes when the query is not UTF-8) become `%XX`, which decodes to the same value
/// (hyper answers 400 to these; the server accepted them, so the service gets the request).
///
/// `OPTIONS *` (asterisk-form, whose PATH_INFO is `*`) stays `*`, as hyper hands it over.
///
/// `keep_percent`: the path is still encoded as sent ([`escaped_target`]), so a `%` is the
/// client's own escape and stays.
fn origin_form(path: &[u8], query: &[u8], keep_percent: bool, target: &mut &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let escaped = |target: &mut &mut [u8], b: u8, literal: bool| {
        if literal {
            target.put_u8(b);
        } else {
            target.put_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
    };
    if path == b"*" && query.is_empty() {
        target.put_u8(b'*');
        return;
    }
    if !path.starts_with(b"/") {
        target.put_u8(b'/');
    }
    for &b in path {
        escaped(target, b, is_path_byte(b) || (keep_percent && b == b'%'));
    }
    if !query.is_empty() {
        target.put_u8(b'?');
        let utf8 = std::str::from_utf8(query).is_ok();
        for &b in query {
            escaped(target, b, is_query_byte(b, utf8));
        }
    }
}

/// The request-target as sent, in origin form (an absolute form's scheme and authority left
/// out), with the bytes `http::Uri` cannot hold percent-encoded as [`origin_form`] does; the
/// client's own escapes stay (a `%2F` stays one).
fn escaped_target(target: &[u8], out: &mut &mut [u8]) {
    let origin = if target.starts_with(b"/") || target == b"*" {
        target
    } else {
        let after_scheme = target
            .windows(3)
            .position(|w| w == b"://")
            .map_or(target, |at| &target[at + 3..]);
        after_scheme
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .map_or(&b""[..], |at| &after_scheme[at..])
    };
    let (path, query) = match origin.iter().position(|&b| b == b'?') {
        Some(at) => (&origin[..at], &origin[at + 1..]),
        None => (origin, &b""[..]),
    };
    origin_form(path, query, true, out);
}

/// An upper bound of [`origin_form`]'s length (every byte escaped).
fn origin_form_len(path: &[u8], query: &[u8]) -> usize {
    1 + 3 * path.len() + 1 + 3 * query.len()
}

/// Whether `http::Uri` holds `b` literally in a query (`utf8`: the whole query is UTF-8): visible
/// ASCII but `#` (a fragment), `"`, `<` and `>`; non-ASCII only as part of UTF-8.
fn is_query_byte(b: u8, utf8: bool) -> bool {
    match b {
        b'#' | b'"' | b'<' | b'>' => false,
        0x80.. => utf8,
        _ => b.is_ascii_graphic(),
    }
}

/// RFC 3986 `pchar` plus `/`: unreserved, sub-delims, `:` and `@`.
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
