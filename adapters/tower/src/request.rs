//! The environ → `http::Request` conversion: method, origin-form URI, version and headers, as a
//! hyper server would hand them to a tower service.

use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};
use std::fmt::Write as _;

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

/// The request head as the environ describes it; the body is attached by the caller.
pub(crate) fn head_from_environ<'a>(
    vars: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<Request<()>, BuildError> {
    let mut method = &b""[..];
    let mut path = &b"/"[..];
    let mut query = &b""[..];
    let mut version = Version::HTTP_11;
    let mut builder = Request::builder();
    let headers = builder.headers_mut().expect("a fresh builder has no error");
    for (name, value) in vars {
        match name {
            b"REQUEST_METHOD" => method = value,
            b"PATH_INFO" => path = value,
            b"QUERY_STRING" => query = value,
            b"SERVER_PROTOCOL" if value == b"HTTP/1.0" => version = Version::HTTP_10,
            b"CONTENT_TYPE" => append(headers, http::header::CONTENT_TYPE, value),
            b"CONTENT_LENGTH" => append(headers, http::header::CONTENT_LENGTH, value),
            _ => {
                if let Some(cgi) = name.strip_prefix(b"HTTP_") {
                    if let Ok(name) = HeaderName::from_bytes(&header_name(cgi)) {
                        append(headers, name, value);
                    }
                }
            }
        }
    }
    let method = Method::from_bytes(method).map_err(|_| BuildError::Method)?;
    let target = origin_form(path, query);
    let uri: Uri = target.parse().map_err(|_| BuildError::Uri(target))?;
    Ok(builder
        .method(method)
        .uri(uri)
        .version(version)
        .body(())
        .expect("method, URI and version were validated above"))
}

fn append(headers: &mut http::HeaderMap, name: HeaderName, value: &[u8]) {
    // The server refuses CR/LF/NUL in header values, so this only skips what `http` stricter-
    // than-RFC rejects (none today); a skipped header is better than a refused request.
    if let Ok(value) = HeaderValue::from_bytes(value) {
        headers.append(name, value);
    }
}

/// `X_FORWARDED_FOR` → `x-forwarded-for` (CGI spelling back to a header name).
fn header_name(cgi: &[u8]) -> Vec<u8> {
    cgi.iter()
        .map(|&b| match b {
            b'_' => b'-',
            b => b.to_ascii_lowercase(),
        })
        .collect()
}

/// `path?query` with the path percent-encoded again: PATH_INFO is decoded, but a service (axum's
/// router, its `Path` extractor) expects the request target as sent. Bytes a path may hold
/// literally (RFC 3986 `pchar` and `/`) stay; every other byte — `%` itself, space, `?`, `#`,
/// non-ASCII — becomes `%XX`. What cannot be recovered: a `%2F` the client sent arrives as `/`.
fn origin_form(path: &[u8], query: &[u8]) -> String {
    let mut target = String::with_capacity(path.len() + query.len() + 1);
    if !path.starts_with(b"/") {
        target.push('/');
    }
    for &b in path {
        if is_path_byte(b) {
            target.push(b as char);
        } else {
            let _ = write!(target, "%{b:02X}");
        }
    }
    if !query.is_empty() {
        target.push('?');
        // The query arrives raw (not decoded); only bytes a URI cannot hold are escaped.
        for &b in query {
            if b.is_ascii_graphic() && b != b'#' {
                target.push(b as char);
            } else {
                let _ = write!(target, "%{b:02X}");
            }
        }
    }
    target
}

/// RFC 3986 `pchar` plus `/`: unreserved, sub-delims, `:` and `@`.
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(vars: &[(&str, &str)]) -> Request<()> {
        head_from_environ(vars.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))).unwrap()
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
    fn an_empty_path_becomes_root() {
        let req = head(&[("REQUEST_METHOD", "GET"), ("PATH_INFO", "")]);
        assert_eq!(req.uri(), "/");
    }

    #[test]
    fn a_bad_method_is_an_error() {
        let err = head_from_environ([(&b"REQUEST_METHOD"[..], &b"GE T"[..])].into_iter());
        assert_eq!(err.unwrap_err(), BuildError::Method);
    }
}
