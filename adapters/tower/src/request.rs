//! The environ → `http::Request` conversion: method, origin-form URI, version and headers, as a
//! hyper server would hand them to a tower service.

use bytes::{BufMut, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};

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

    fn iter(&self) -> impl Iterator<Item = &(&'a [u8], &'a [u8])> {
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
    /// The first Content-Length's value, read on the walk over the fields (no header-map
    /// lookup afterwards): the request body's exact size.
    pub(crate) length: Option<u64>,
}

/// A Content-Length value as a number (`None`: not one).
fn length_of(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
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
    let mut has_body = false;
    let mut has_upgrade = false;
    let mut length = None;
    let mut fields = Fields::new();
    let mut value_bytes = 0;
    for (name, value) in vars {
        match name {
            b"REQUEST_METHOD" => method = value,
            b"PATH_INFO" => path = value,
            b"QUERY_STRING" => query = value,
            b"SERVER_PROTOCOL" if value == b"HTTP/1.0" => version = Version::HTTP_10,
            b"SERVER_PROTOCOL" if value == b"HTTP/2" => {
                // An HTTP/2 request's body is framed by the stream (a gRPC call has neither a
                // Content-Length nor a Transfer-Encoding): there may be one.
                version = Version::HTTP_2;
                has_body = true;
            }
            b"CONTENT_LENGTH" => {
                has_body |= !value.iter().all(|&b| b == b'0' || b == b' ');
                if fields.iter().all(|(name, _)| *name != b"CONTENT_LENGTH") {
                    length = length_of(value);
                }
                value_bytes += value.len();
                fields.push((name, value));
            }
            b"CONTENT_TYPE" => {
                value_bytes += value.len();
                fields.push((name, value));
            }
            _ if name.starts_with(b"HTTP_") => {
                has_body |= name == b"HTTP_TRANSFER_ENCODING";
                has_upgrade |= name == b"HTTP_UPGRADE";
                value_bytes += value.len();
                fields.push((name, value));
            }
            _ => {}
        }
    }
    let method = Method::from_bytes(method).map_err(|_| BuildError::Method)?;
    let request = assemble(
        (method, version),
        origin_form_len(path, query),
        |shared| origin_form(path, query, shared),
        (&fields, value_bytes),
        header_name,
    )
    .map_err(|target| BuildError::Uri(String::from_utf8_lossy(&target).into_owned()))?;
    Ok(Head {
        request,
        has_body,
        has_upgrade,
        length,
    })
}

/// The request head from the parts the server parsed (ABI 1.3 `request_parts`), as hyper makes
/// it: the target as sent (HTTP/2: `scheme://authority` + `:path`, hyper's absolute URI), the
/// fields one by one as received. `None` when the target is not one `http::Uri` holds (hyper
/// answers those 400; the server accepted them): the caller then converts the environ, which
/// escapes what a `Uri` cannot hold.
pub(crate) fn head_from_parts(parts: &app_abi::Parts<'_>) -> Result<Option<Head>, BuildError> {
    let method = Method::from_bytes(parts.method).map_err(|_| BuildError::Method)?;
    let version = match parts.version {
        10 => Version::HTTP_10,
        20 => Version::HTTP_2,
        _ => Version::HTTP_11,
    };
    // An HTTP/2 request's body is framed by the stream (a gRPC call has neither a
    // Content-Length nor a Transfer-Encoding): there may be one.
    let mut has_body = version == Version::HTTP_2;
    let mut has_upgrade = false;
    let mut length = None;
    let mut fields = Fields::new();
    let mut value_bytes = 0;
    for (name, value) in parts.fields() {
        note_framing(name, value, (&mut has_body, &mut has_upgrade));
        if name.eq_ignore_ascii_case(b"content-length")
            && fields
                .iter()
                .all(|(name, _)| !name.eq_ignore_ascii_case(b"content-length"))
        {
            length = length_of(value);
        }
        value_bytes += value.len();
        fields.push((name, value));
    }
    let absolute = version == Version::HTTP_2
        && !parts.scheme.is_empty()
        && !parts.authority.is_empty()
        && parts.target.starts_with(b"/");
    let target_len = if absolute {
        parts.scheme.len() + 3 + parts.authority.len() + parts.target.len()
    } else {
        parts.target.len().max(1)
    };
    let write_target = |shared: &mut BytesMut| {
        if absolute {
            shared.put_slice(parts.scheme);
            shared.put_slice(b"://");
            shared.put_slice(parts.authority);
        }
        shared.put_slice(match parts.target {
            b"" => b"/",
            target => target,
        });
    };
    let built = assemble(
        (method, version),
        target_len,
        write_target,
        (&fields, value_bytes),
        |name| HeaderName::from_bytes(name).ok(),
    );
    Ok(built.ok().map(|request| Head {
        request,
        has_body,
        has_upgrade,
        length,
    }))
}

/// The request head from the environ (method, the target escaped as an origin form, version)
/// with the fields of the parts, for a target `http::Uri` refuses as sent.
pub(crate) fn head_from_environ_and_parts<'a>(
    vars: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    parts: &app_abi::Parts<'_>,
) -> Result<Head, BuildError> {
    let mut head = head_from_environ(vars)?;
    let mut has_body = head.request.version() == Version::HTTP_2;
    let mut has_upgrade = false;
    let headers = head.request.headers_mut();
    // HTTP/2's `:authority` reaches the environ as HTTP_HOST when no Host field came; with an
    // origin-form URI, that Host is the only place the router can find it.
    let environ_host = headers.remove(http::header::HOST);
    headers.clear();
    for (name, value) in parts.fields() {
        note_framing(name, value, (&mut has_body, &mut has_upgrade));
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    if let Some(host) = environ_host.filter(|_| !headers.contains_key(http::header::HOST)) {
        headers.insert(http::header::HOST, host);
    }
    head.has_body = has_body;
    head.has_upgrade = has_upgrade;
    Ok(head)
}

/// What field `name: value` says of [`Head::has_body`] and [`Head::has_upgrade`].
fn note_framing(name: &[u8], value: &[u8], (has_body, has_upgrade): (&mut bool, &mut bool)) {
    if name.eq_ignore_ascii_case(b"content-length") {
        *has_body |= !value.iter().all(|&b| b == b'0' || b == b' ');
    } else {
        *has_body |= name.eq_ignore_ascii_case(b"transfer-encoding");
        *has_upgrade |= name.eq_ignore_ascii_case(b"upgrade");
    }
}

/// The `http::Request` from its method and version, its target (written by `target`, at most
/// `target_len` bytes) and its fields (names converted by `name`; one that gives `None` is
/// left out). The target and every value are copied once, into one shared buffer that the URI
/// and the header values then point into (as hyper does with its read buffer), so a request
/// costs two allocations here however many headers it has (and the header map's own).
/// `Err` holds a target `http::Uri` refuses.
fn assemble(
    (method, version): (Method, Version),
    target_len: usize,
    target: impl FnOnce(&mut BytesMut),
    (fields, value_bytes): (&Fields<'_>, usize),
    name: impl Fn(&[u8]) -> Option<HeaderName>,
) -> Result<Request<()>, bytes::Bytes> {
    let mut shared = BytesMut::with_capacity(target_len + value_bytes);
    target(&mut shared);
    let target_len = shared.len();
    for (_, value) in fields.iter() {
        shared.extend_from_slice(value);
    }
    let shared = shared.freeze();
    let target = shared.slice(..target_len);
    let uri = Uri::from_maybe_shared(target.clone()).map_err(|_| target)?;
    let mut map = http::HeaderMap::with_capacity(fields.count());
    let mut at = target_len;
    for (field, value) in fields.iter() {
        let range = at..at + value.len();
        at = range.end;
        // The server refuses CR/LF/NUL in header values, so this only skips what `http`
        // stricter-than-RFC rejects (none today); a skipped header is better than a refused
        // request.
        let Ok(value) = HeaderValue::from_maybe_shared(shared.slice(range)) else {
            continue;
        };
        if let Some(name) = name(field) {
            map.append(name, value);
        }
    }
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = map;
    Ok(request)
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
fn origin_form(path: &[u8], query: &[u8], target: &mut BytesMut) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let escaped = |target: &mut BytesMut, b: u8, literal: bool| {
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
        escaped(target, b, is_path_byte(b));
    }
    if !query.is_empty() {
        target.put_u8(b'?');
        let utf8 = std::str::from_utf8(query).is_ok();
        for &b in query {
            escaped(target, b, is_query_byte(b, utf8));
        }
    }
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
mod tests {
    use super::*;

    fn head(vars: &[(&str, &str)]) -> Request<()> {
        head_from_environ(vars.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
            .unwrap()
            .request
    }

    #[test]
    fn method_uri_version_and_headers_come_from_the_environ() {
        let req = head(&[
            ("REQUEST_METHOD", "POST"),
            ("SCRIPT_NAME", ""),
            ("PATH_INFO", "/items/7"),
            ("QUERY_STRING", "a=1&b=x%20y"),
            ("SERVER_PROTOCOL", "HTTP/1.0"),
            ("CONTENT_TYPE", "application/json"),
            ("CONTENT_LENGTH", "12"),
            ("HTTP_HOST", "example.test:8080"),
            ("HTTP_X_REQUEST_ID", "abc"),
            ("HTTP_ACCEPT", "text/html, application/json"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("webserver.url_scheme", "http"),
        ]);
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "/items/7?a=1&b=x%20y");
        assert_eq!(req.uri().query(), Some("a=1&b=x%20y"));
        assert_eq!(req.version(), Version::HTTP_10);
        let h = req.headers();
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["content-length"], "12");
        assert_eq!(h["host"], "example.test:8080");
        assert_eq!(h["x-request-id"], "abc");
        assert_eq!(h["accept"], "text/html, application/json");
        assert_eq!(h.len(), 5, "no CGI-only variable becomes a header: {h:?}");
    }

    #[test]
    fn the_decoded_path_is_encoded_again() {
        let req = head(&[
            ("REQUEST_METHOD", "GET"),
            ("PATH_INFO", "/a b/caf\u{e9}/100%/x?y#z"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
        ]);
        assert_eq!(req.uri().path(), "/a%20b/caf%C3%A9/100%25/x%3Fy%23z");
        assert_eq!(req.uri().query(), None);
        assert_eq!(req.version(), Version::HTTP_11);
    }

    #[test]
    fn path_bytes_that_need_no_escape_stay_literal() {
        let path = "/users/:id/@me/-._~!$&'()*+,;=";
        let req = head(&[("REQUEST_METHOD", "GET"), ("PATH_INFO", path)]);
        assert_eq!(req.uri().path(), path);
    }

    #[test]
    fn the_query_stays_as_sent_but_for_bytes_a_uri_cannot_hold() {
        let query = |raw: &[u8]| {
            let vars = [
                (&b"REQUEST_METHOD"[..], &b"GET"[..]),
                (b"PATH_INFO", b"/q"),
                (b"QUERY_STRING", raw),
            ];
            let req = head_from_environ(vars).unwrap().request;
            req.uri().query().map(str::to_owned)
        };
        let same = "a=caf%C3%A9&b=caf\u{e9}&c=!$&'()*+,;=:@/?[]{}|\\^`~%";
        assert_eq!(query(same.as_bytes()).as_deref(), Some(same));
        assert_eq!(
            query(br#"q="<b>"&x=1"#).as_deref(),
            Some("q=%22%3Cb%3E%22&x=1")
        );
        assert_eq!(
            query(b"a=caf\xe9 b#c\x7f").as_deref(),
            Some("a=caf%E9%20b%23c%7F"),
            "not UTF-8: non-ASCII bytes escaped, as controls, space and # are"
        );
    }

    #[test]
    fn asterisk_form_stays_an_asterisk() {
        let req = head(&[("REQUEST_METHOD", "OPTIONS"), ("PATH_INFO", "*")]);
        assert_eq!(req.uri(), "*");
        assert_eq!(req.uri().path(), "*");
    }

    #[test]
    fn an_empty_path_becomes_root() {
        let req = head(&[("REQUEST_METHOD", "GET"), ("PATH_INFO", "")]);
        assert_eq!(req.uri(), "/");
    }

    #[test]
    fn a_body_is_announced_by_a_length_other_than_zero_or_a_transfer_coding() {
        let body = |vars: &[(&str, &str)]| {
            let mut all = vec![("REQUEST_METHOD", "POST")];
            all.extend_from_slice(vars);
            head_from_environ(all.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
                .unwrap()
                .has_body
        };
        assert!(!body(&[]));
        assert!(!body(&[("CONTENT_LENGTH", "0")]));
        assert!(body(&[("CONTENT_LENGTH", "10")]));
        assert!(body(&[("HTTP_TRANSFER_ENCODING", "chunked")]));
    }

    #[test]
    fn an_upgrade_field_is_noted() {
        let upgrade = |vars: &[(&str, &str)]| {
            head_from_environ(vars.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
                .unwrap()
                .has_upgrade
        };
        assert!(!upgrade(&[
            ("REQUEST_METHOD", "GET"),
            ("HTTP_CONNECTION", "upgrade")
        ]));
        assert!(upgrade(&[
            ("REQUEST_METHOD", "GET"),
            ("HTTP_UPGRADE", "websocket")
        ]));
    }

    #[test]
    fn long_and_repeated_header_names_survive() {
        let long = format!("HTTP_X_{}", "A".repeat(100));
        let req = head(&[
            ("REQUEST_METHOD", "GET"),
            (&long, "long"),
            ("HTTP_X_A", "1"),
            ("HTTP_X_A", "2"),
        ]);
        let name = format!("x-{}", "a".repeat(100));
        assert_eq!(req.headers()[name.as_str()], "long");
        let repeated: Vec<_> = req.headers().get_all("x-a").iter().collect();
        assert_eq!(repeated, ["1", "2"]);
    }

    #[test]
    fn known_names_are_the_names_the_conversion_gives() {
        for field in [
            "HTTP_HOST",
            "HTTP_USER_AGENT",
            "HTTP_ACCEPT",
            "HTTP_ACCEPT_ENCODING",
            "HTTP_ACCEPT_LANGUAGE",
            "HTTP_CONNECTION",
            "HTTP_COOKIE",
            "HTTP_AUTHORIZATION",
            "HTTP_CACHE_CONTROL",
            "HTTP_ORIGIN",
            "HTTP_REFERER",
            "HTTP_UPGRADE",
            "HTTP_TE",
            "HTTP_TRANSFER_ENCODING",
            "HTTP_IF_NONE_MATCH",
            "HTTP_IF_MODIFIED_SINCE",
            "HTTP_RANGE",
            "HTTP_SEC_WEBSOCKET_KEY",
            "HTTP_SEC_WEBSOCKET_VERSION",
            "HTTP_SEC_WEBSOCKET_PROTOCOL",
            "HTTP_SEC_WEBSOCKET_EXTENSIONS",
            "CONTENT_TYPE",
            "CONTENT_LENGTH",
        ] {
            let known = known_header_name(field.as_bytes());
            assert!(known.is_some(), "{field} is not in the table");
            assert_eq!(known, converted_header_name(field.as_bytes()), "{field}");
        }
        assert_eq!(known_header_name(b"HTTP_X_REQUEST_ID"), None);
    }

    #[test]
    fn more_fields_than_the_stack_holds_all_arrive_in_order() {
        let names: Vec<String> = (0..STACK_FIELDS * 2 + 3)
            .map(|i| format!("HTTP_X_F{i}"))
            .collect();
        let mut vars = vec![("REQUEST_METHOD".to_owned(), "GET".to_owned())];
        vars.extend(names.iter().map(|n| (n.clone(), format!("v{n}"))));
        vars.push(("HTTP_X_F0".to_owned(), "again".to_owned()));
        let req = head_from_environ(vars.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
            .unwrap()
            .request;
        assert_eq!(req.headers().len(), names.len() + 1);
        for name in &names {
            let header = name["HTTP_".len()..].replace('_', "-").to_ascii_lowercase();
            assert_eq!(req.headers()[header.as_str()], format!("v{name}"));
        }
        let repeated: Vec<_> = req.headers().get_all("x-f0").iter().collect();
        assert_eq!(repeated, ["vHTTP_X_F0", "again"]);
    }

    #[test]
    fn a_bad_method_is_an_error() {
        let err = head_from_environ([(&b"REQUEST_METHOD"[..], &b"GE T"[..])]);
        assert_eq!(err.err(), Some(BuildError::Method));
    }
}
