//! The access log (`RUST_LOG=access=info`): one line per request, written from typed facts.

use std::fmt;
use std::time::Duration;

use crate::app::environ::RequestLine;
use crate::listen::PeerHost;

/// One served request: what was asked, what was answered, how long it took.
pub(crate) struct AccessRecord<'a> {
    /// The client's IP address, or `unix` on a unix socket.
    pub(crate) peer: PeerHost,
    pub(crate) request: RequestLine<'a>,
    /// HTTP/1.`version_minor`.
    pub(crate) version_minor: u8,
    pub(crate) status: u16,
    /// Response body bytes sent.
    pub(crate) body_bytes: u64,
    pub(crate) elapsed: Duration,
}

impl fmt::Display for AccessRecord<'_> {
    /// `PEER "METHOD PATH[?QUERY] HTTP/1.x" STATUS BYTES MILLISms`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let RequestLine {
            method,
            path,
            query,
        } = self.request;
        write!(
            f,
            "{} \"{} {}",
            self.peer,
            String::from_utf8_lossy(method),
            String::from_utf8_lossy(path)
        )?;
        if !query.is_empty() {
            write!(f, "?{}", String::from_utf8_lossy(query))?;
        }
        write!(
            f,
            " HTTP/1.{}\" {} {} {:.3}ms",
            self.version_minor,
            self.status,
            self.body_bytes,
            self.elapsed.as_secs_f64() * 1e3
        )
    }
}

/// The line for a request the app never saw.
pub(crate) fn log_rejected(peer: PeerHost, status: u16, reason: &dyn fmt::Display) {
    log::info!(target: "access", "{peer} \"-\" {status} 0 rejected: {reason}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format_table() {
        let record = |method, path, query, version_minor, status| AccessRecord {
            peer: PeerHost(Some([10, 0, 0, 7].into())),
            request: RequestLine {
                method,
                path,
                query,
            },
            version_minor,
            status,
            body_bytes: 12,
            elapsed: Duration::from_micros(1500),
        };
        let cases = [
            (
                record(b"GET", b"/a b", b"x=1", 1, 200),
                "10.0.0.7 \"GET /a b?x=1 HTTP/1.1\" 200 12 1.500ms",
            ),
            (
                record(b"HEAD", b"/", b"", 0, 404),
                "10.0.0.7 \"HEAD / HTTP/1.0\" 404 12 1.500ms",
            ),
            (
                record(b"GET", b"/\xff", b"", 1, 500),
                "10.0.0.7 \"GET /\u{fffd} HTTP/1.1\" 500 12 1.500ms",
            ),
        ];
        for (record, want) in cases {
            assert_eq!(record.to_string(), want);
        }
    }
}
