//! What the statistics endpoint answers: where a request head ends, which page it asks for, and
//! the whole `Connection: close` response for it.

use super::Page;

/// Where the head ends (after its blank line), if it is complete.
pub(super) fn head_end(head: &[u8]) -> Option<usize> {
    let crlf = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = head.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What a request head asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    Page { page: Page, head_only: bool },
    NotFound,
    MethodNotAllowed,
    BadRequest,
    TooLarge,
}

pub(super) fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with(b"HTTP/1.") {
        return Route::BadRequest;
    }
    let head_only = match method {
        b"GET" => false,
        b"HEAD" => true,
        _ => return Route::MethodNotAllowed,
    };
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let page = match path {
        b"/stats" | b"/stats.json" => Page::Json,
        b"/metrics" => Page::Prometheus,
        b"/config" => Page::Config,
        _ => return Route::NotFound,
    };
    Route::Page { page, head_only }
}

pub(super) fn answer(route: Route, render: &mut dyn FnMut(Page) -> String) -> Vec<u8> {
    match route {
        Route::Page { page, head_only } => {
            let content_type = match page {
                Page::Json => "application/json",
                Page::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
                Page::Config => "text/plain; charset=utf-8",
            };
            let body = render(page);
            response(200, "OK", content_type, &[], body.as_bytes(), head_only)
        }
        Route::NotFound => plain(
            404,
            "Not Found",
            "not found: GET /stats (JSON), /metrics (Prometheus) or /config (settings)\n",
        ),
        Route::MethodNotAllowed => response(
            405,
            "Method Not Allowed",
            "text/plain; charset=utf-8",
            &[("Allow", "GET, HEAD")],
            b"only GET and HEAD\n",
            false,
        ),
        Route::BadRequest => plain(400, "Bad Request", "bad request\n"),
        Route::TooLarge => plain(
            431,
            "Request Header Fields Too Large",
            "request head too large\n",
        ),
    }
}

fn plain(status: u16, reason: &str, body: &str) -> Vec<u8> {
    response(
        status,
        reason,
        "text/plain; charset=utf-8",
        &[],
        body.as_bytes(),
        false,
    )
}

fn response(
    status: u16,
    reason: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    head_only: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let page = |page, head_only| Route::Page { page, head_only };
        assert_eq!(route(b"GET /stats HTTP/1.1\r\n"), page(Page::Json, false));
        assert_eq!(
            route(b"GET /stats.json?x=1 HTTP/1.0\n"),
            page(Page::Json, false)
        );
        assert_eq!(
            route(b"HEAD /metrics HTTP/1.1\r\n"),
            page(Page::Prometheus, true)
        );
        assert_eq!(
            route(b"GET /config HTTP/1.1\r\n"),
            page(Page::Config, false)
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /stats HTTP/1.1\r\n"), Route::MethodNotAllowed);
        assert_eq!(route(b"GET /stats\r\n"), Route::BadRequest);
        assert_eq!(route(b"GET /stats SPDY/3\r\n"), Route::BadRequest);
    }

    #[test]
    fn head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
