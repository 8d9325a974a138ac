//! The answer to one request under a `--static` prefix: its head (and a small body) appended to
//! the connection's held output, and the rest of the body, if any, as a [`FileBody`].
//!
//! Statuses: 200 (the file), 206 (one range), 304 (the client's copy is current), 404 (no such
//! regular file beneath DIR, or a path that tries to leave it), 405 (not GET or HEAD, with
//! `Allow`), 416 (a range past the end, with `Content-Range: bytes */SIZE`), 500 (the disk
//! failed). Every file answer says `Vary: Accept-Encoding`, since a precompressed sibling may
//! be chosen for another client.

use std::borrow::Cow;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use super::body::FileBody;
use super::cache::{CachedFile, INLINE_BODY};
use super::conditional::{accepted_codings, not_modified, part, Coding, Part};
use super::{path, Mount, StaticFiles};
use crate::http::response::{encode_own_head, reason_phrase, Framing, Head};

/// What of a request the answer depends on.
#[derive(Debug, Default)]
pub(crate) struct Request<'r> {
    pub(crate) method: &'r [u8],
    /// Still percent-encoded.
    pub(crate) path: &'r [u8],
    pub(crate) version_minor: u8,
    /// The connection may carry another request after this one (the client allows it, the
    /// server is not draining, and the request has no body left unread).
    pub(crate) keep_alive: bool,
    if_none_match: Option<&'r [u8]>,
    if_modified_since: Option<&'r [u8]>,
    range: Option<&'r [u8]>,
    if_range: Option<&'r [u8]>,
    accept_encoding: Option<&'r [u8]>,
}

impl<'r> Request<'r> {
    pub(crate) fn new(
        method: &'r [u8],
        path: &'r [u8],
        version_minor: u8,
        keep_alive: bool,
    ) -> Request<'r> {
        Request {
            method,
            path,
            version_minor,
            keep_alive,
            ..Request::default()
        }
    }

    /// Takes the headers the answer depends on (the first of each name).
    pub(crate) fn with_headers(
        mut self,
        headers: impl Iterator<Item = (&'r [u8], &'r [u8])>,
    ) -> Request<'r> {
        for (name, value) in headers {
            let slot = match name.len() {
                5 if name.eq_ignore_ascii_case(b"range") => &mut self.range,
                8 if name.eq_ignore_ascii_case(b"if-range") => &mut self.if_range,
                13 if name.eq_ignore_ascii_case(b"if-none-match") => &mut self.if_none_match,
                15 if name.eq_ignore_ascii_case(b"accept-encoding") => &mut self.accept_encoding,
                17 if name.eq_ignore_ascii_case(b"if-modified-since") => {
                    &mut self.if_modified_since
                }
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        self
    }
}

/// How a request under a prefix was answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// Body bytes the answer sends (for the access log).
    pub(crate) body_bytes: u64,
    /// The body still to send after the held output, if it was too large to hold.
    pub(crate) body: Option<FileBody>,
}

/// One response's headers besides those `encode_own_head` adds.
#[derive(Default)]
struct Headers<'a>(Vec<(&'static [u8], Cow<'a, [u8]>)>);

impl<'a> Headers<'a> {
    fn with_capacity(capacity: usize) -> Headers<'a> {
        Headers(Vec::with_capacity(capacity))
    }

    fn add(&mut self, name: &'static str, value: impl Into<Cow<'a, [u8]>>) {
        self.0.push((name.as_bytes(), value.into()));
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0.iter().map(|(name, value)| (*name, value.as_ref()))
    }
}

impl StaticFiles {
    /// Answers `request` into `out` if its path is under a prefix (`None`: the app's).
    pub(crate) fn answer(
        &self,
        request: &Request<'_>,
        out: &mut Vec<u8>,
        date: &[u8],
    ) -> Option<Answer> {
        let (mount, rest) = self.route(request.path)?;
        let is_head = request.method == b"HEAD";
        if !is_head && request.method != b"GET" {
            let mut headers = Headers::default();
            headers.add("Allow", &b"GET, HEAD"[..]);
            return Some(plain(request, 405, headers, out, date));
        }
        let Some(mut relative) = path::relative(&rest) else {
            return Some(plain(request, 404, Headers::default(), out, date));
        };
        // The cache's key and the system calls' path.
        relative.push(0);
        Some(
            match self.file_answer(mount, &relative, request, out, date) {
                Ok(answer) => answer,
                Err(e) if refused(&e) => plain(request, 404, Headers::default(), out, date),
                Err(e) => {
                    log::warn!(
                        "--static: cannot serve {}: {e}",
                        mount
                            .root
                            .join(String::from_utf8_lossy(&relative[..relative.len() - 1]).as_ref())
                            .display()
                    );
                    plain(request, 500, Headers::default(), out, date)
                }
            },
        )
    }

    fn file_answer(
        &self,
        mount: &Mount,
        relative: &[u8],
        request: &Request<'_>,
        out: &mut Vec<u8>,
        date: &[u8],
    ) -> io::Result<Answer> {
        let (file, content_type, coding) = open_variant(mount, relative, request)?;
        let size = file.size();
        let validators = &file.validators;
        let mut headers = Headers::with_capacity(9);
        headers.add("ETag", validators.etag.as_bytes());
        headers.add("Last-Modified", file.last_modified.as_bytes());
        headers.add("Vary", &b"Accept-Encoding"[..]);
        if let Some(value) = &mount.cache_control {
            headers.add("Cache-Control", value.as_bytes());
        }
        if not_modified(request.if_none_match, request.if_modified_since, validators) {
            encode(request, 304, None, &headers, out, date);
            return Ok(Answer {
                status: 304,
                body_bytes: 0,
                body: None,
            });
        }
        headers.add("Content-Type", content_type.as_bytes());
        if let Some(coding) = coding {
            headers.add("Content-Encoding", coding.name().as_bytes());
        }
        headers.add("Accept-Ranges", &b"bytes"[..]);
        // HEAD is answered as GET would be without a range (RFC 9110 §14.2: Range is GET's).
        let range = if is_head(request) {
            Part::Whole
        } else {
            part(request.range, request.if_range, size, validators)
        };
        let (status, first, len) = match range {
            Part::Whole => (200, 0, size),
            Part::Range { first, last } => {
                headers.add(
                    "Content-Range",
                    format!("bytes {first}-{last}/{size}").into_bytes(),
                );
                (206, first, last - first + 1)
            }
            Part::Unsatisfiable => {
                headers.add("Content-Range", format!("bytes */{size}").into_bytes());
                encode(request, 416, Some(0), &headers, out, date);
                return Ok(Answer {
                    status: 416,
                    body_bytes: 0,
                    body: None,
                });
            }
        };
        let mark = out.len();
        encode(request, status, Some(len), &headers, out, date);
        if is_head(request) || len == 0 {
            return Ok(Answer {
                status,
                body_bytes: 0,
                body: None,
            });
        }
        if len <= INLINE_BODY {
            if let Err(e) = file.read_into(first, len, out) {
                // Nothing of this answer is held: the caller answers 500 in its place.
                out.truncate(mark);
                return Err(e);
            }
            return Ok(Answer {
                status,
                body_bytes: len,
                body: None,
            });
        }
        let body = FileBody::new(
            Arc::clone(&file.file),
            first,
            first + len,
            !request.keep_alive,
        );
        Ok(Answer {
            status,
            body_bytes: len,
            body: Some(body),
        })
    }
}

/// The file to answer with: `relative` (NUL-terminated), or its precompressed sibling the
/// client prefers; with the media type of `relative` and the coding chosen. Only regular
/// files: anything else is `NotFound`.
fn open_variant(
    mount: &Mount,
    relative: &[u8],
    request: &Request<'_>,
) -> io::Result<(Arc<CachedFile>, &'static str, Option<Coding>)> {
    let open = |relative: &[u8]| mount.cache.get(mount.dir.as_fd(), &mount.root, relative);
    // The file itself must exist: its sibling alone is not served.
    let file = open(relative)?;
    let content_type = file.content_type;
    if request.accept_encoding.is_none() {
        return Ok((file, content_type, None));
    }
    let name = relative.strip_suffix(b"\0").unwrap_or(relative);
    for coding in accepted_codings(request.accept_encoding) {
        let mut sibling = Vec::with_capacity(relative.len() + 3);
        sibling.extend_from_slice(name);
        sibling.extend_from_slice(coding.suffix().as_bytes());
        sibling.push(0);
        match open(&sibling) {
            Ok(sibling) => return Ok((sibling, content_type, Some(coding))),
            Err(e) if refused(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((file, content_type, None))
}

/// An open failure that means "no such file here" (404), not a failing disk.
fn refused(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
    ) || matches!(
        e.raw_os_error(),
        Some(libc::ENOTDIR | libc::EXDEV | libc::ELOOP | libc::ENAMETOOLONG | libc::EISDIR)
    )
}

fn is_head(request: &Request<'_>) -> bool {
    request.method == b"HEAD"
}

/// A head with `headers`: a body of `len` bytes (said but not sent to HEAD), or none (304).
fn encode(
    request: &Request<'_>,
    status: u16,
    len: Option<u64>,
    headers: &Headers,
    out: &mut Vec<u8>,
    date: &[u8],
) {
    let framing = match len {
        Some(n) if !is_head(request) => Framing::Length(n),
        _ => Framing::NoBody,
    };
    let head = Head {
        version_minor: request.version_minor,
        status,
        keep_alive: request.keep_alive,
        framing,
        content_length_for_head: len,
    };
    encode_own_head(out, &head, headers.iter(), date);
}

/// A short text answer (`404 Not Found`), keeping the connection when the request allows.
fn plain(
    request: &Request<'_>,
    status: u16,
    mut headers: Headers,
    out: &mut Vec<u8>,
    date: &[u8],
) -> Answer {
    let text = format!("{status} {}\n", reason_phrase(status));
    headers.add("Content-Type", &b"text/plain; charset=utf-8"[..]);
    encode(
        request,
        status,
        Some(text.len() as u64),
        &headers,
        out,
        date,
    );
    let body_bytes = if is_head(request) {
        0
    } else {
        out.extend_from_slice(text.as_bytes());
        text.len() as u64
    };
    Answer {
        status,
        body_bytes,
        body: None,
    }
}
