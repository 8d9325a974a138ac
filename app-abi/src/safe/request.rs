//! [`Request`]: safe accessors over a server-owned `WsRequest` (PEP 3333 `environ`, `wsgi.input`,
//! `start_response`, `write`, `wsgi.errors`).

use super::deferred::{try_read, BodyIo, TryRead, Waker};
use super::error::AbiError;
use super::log::{LogLevel, Logger};
use crate::raw::{WsBytes, WsHost, WsPair, WsRequest, WS_REQ_FIELDS_IN_PARTS, WS_RESPONSE_REPLACE};
use core::ffi::c_void;
use core::marker::PhantomData;
use std::borrow::Cow;
use std::io;

/// Up to this many response headers are passed to the host from a stack array, without allocating.
const STACK_HEADERS: usize = 16;
/// Up to this many (by the iterator's own bound), a smaller array is used.
const FEW_HEADERS: usize = 4;

/// One request, borrowed from the server for the duration of [`crate::App::call`].
///
/// Everything it returns with lifetime `'a` (environ names and values) is server-owned memory that
/// stays valid until `call` returns; copy what you need to keep (into a body iterator, say), since
/// body iterators must be `'static`.
#[derive(Debug)]
pub struct Request<'a> {
    raw: &'a WsRequest,
    environ: &'a [WsPair],
    host: Option<&'a WsHost>,
}

impl<'a> Request<'a> {
    /// Wraps the server's request.
    ///
    /// # Safety
    /// `raw` must satisfy the header's contract for the duration of `'a`: `environ` points to
    /// `environ_len` pairs whose bytes are valid and unmodified, `host` is null or a valid vtable
    /// whose callbacks accept `io` and `log_ctx`.
    pub unsafe fn from_raw(raw: &'a WsRequest) -> Request<'a> {
        let environ = if raw.environ.is_null() || raw.environ_len == 0 {
            &[][..]
        } else {
            // SAFETY: the caller guarantees `environ_len` valid pairs for 'a; null was excluded.
            unsafe { core::slice::from_raw_parts(raw.environ, raw.environ_len) }
        };
        Request {
            raw,
            environ,
            // SAFETY: the caller guarantees `host` is null or valid for 'a.
            host: unsafe { raw.host.as_ref() },
        }
    }

    /// The raw request, for what this layer does not cover.
    pub fn as_raw(&self) -> &'a WsRequest {
        self.raw
    }

    /// The host vtable (null in some tests).
    pub(crate) fn host(&self) -> Option<&'a WsHost> {
        self.host
    }

    /// The `WS_REQ_*` bits (`WS_REQ_MULTITHREAD`, ...).
    pub fn flags(&self) -> u32 {
        self.raw.flags
    }

    /// An environ variable by exact name (first match), like the header's `ws_getenv`. For an
    /// app exported with `WS_APP_REQUEST_PARTS` the server leaves the `HTTP_*` variables out
    /// (`WS_REQ_FIELDS_IN_PARTS`): an `HTTP_*` name is then answered from
    /// [`Request::parts`], the first field of that name (repeats are not joined).
    pub fn var(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.vars()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .or_else(|| self.field_as_var(name))
    }

    /// `HTTP_X_Y` from the parts' first `X-Y` field, when the fields are there only.
    fn field_as_var(&self, name: &[u8]) -> Option<&'a [u8]> {
        let cgi = name.strip_prefix(b"HTTP_")?;
        // CONTENT_TYPE and CONTENT_LENGTH are in the environ, never as HTTP_ names.
        if cgi == b"CONTENT_TYPE" || cgi == b"CONTENT_LENGTH" {
            return None;
        }
        self.fields_in_parts()?
            .iter()
            // SAFETY: the parts' pairs are the host's, valid as long as the request ('a).
            .map(|p| unsafe { (p.name.as_slice(), p.value.as_slice()) })
            .find(|(n, _)| {
                n.len() == cgi.len() && n.iter().zip(cgi).all(|(&h, &e)| cgi_byte(h) == e)
            })
            .map(|(_, v)| v)
    }

    /// The parts' fields, when the server left them out of the environ
    /// (`WS_REQ_FIELDS_IN_PARTS`).
    fn fields_in_parts(&self) -> Option<&'a [WsPair]> {
        if self.flags() & WS_REQ_FIELDS_IN_PARTS == 0 {
            return None;
        }
        self.parts().map(|parts| parts.raw_fields())
    }

    /// All environ variables, in the server's order.
    pub fn vars(&self) -> Vars<'a> {
        Vars {
            inner: self.environ.iter(),
        }
    }

    /// `REQUEST_METHOD`. Methods are RFC 9110 tokens, hence ASCII; a non-UTF-8 value (which a
    /// conforming server never sends) reads as `""`.
    pub fn method(&self) -> &'a str {
        core::str::from_utf8(self.var(b"REQUEST_METHOD").unwrap_or_default()).unwrap_or("")
    }

    /// `PATH_INFO`: the percent-decoded path, as raw bytes (it may not be UTF-8).
    pub fn path(&self) -> &'a [u8] {
        self.var(b"PATH_INFO").unwrap_or_default()
    }

    /// [`Request::path`] as text, invalid UTF-8 replaced by U+FFFD.
    pub fn path_str(&self) -> Cow<'a, str> {
        String::from_utf8_lossy(self.path())
    }

    /// `QUERY_STRING`, raw (not percent-decoded); empty when absent.
    pub fn query(&self) -> &'a [u8] {
        self.var(b"QUERY_STRING").unwrap_or_default()
    }

    /// The raw value of the first `name=value` pair of the query string whose raw name is `name`
    /// (no percent-decoding on either side); `Some(b"")` for a bare `name`.
    pub fn query_param(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.query().split(|&b| b == b'&').find_map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            (k == name).then_some(v)
        })
    }

    /// A request header by case-insensitive name: `content-type` and `content-length` map to
    /// `CONTENT_TYPE` / `CONTENT_LENGTH`, any other name to `HTTP_` + upper case with `-` → `_`
    /// (CGI, RFC 3875 §4.1.18). Repeated headers arrive joined with `", "` by the server.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        let name = name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-type") {
            return self.var(b"CONTENT_TYPE");
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            return self.var(b"CONTENT_LENGTH");
        }
        let in_vars = self
            .vars()
            .find(|(k, _)| {
                k.len() == 5 + name.len()
                    && k.starts_with(b"HTTP_")
                    && k[5..].iter().zip(name).all(|(&e, &h)| e == cgi_byte(h))
            })
            .map(|(_, v)| v);
        in_vars.or_else(|| {
            self.fields_in_parts()?
                .iter()
                // SAFETY: the parts' pairs are the host's, valid as long as the request ('a).
                .map(|p| unsafe { (p.name.as_slice(), p.value.as_slice()) })
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
    }

    /// The request headers: `(lower-case-dashed name, value)` for every `HTTP_*` variable plus
    /// `content-type` / `content-length` when present, in environ order; for an app whose
    /// fields are in the parts only (`WS_REQ_FIELDS_IN_PARTS`), the parts' other fields after
    /// those two, one by one (repeats not joined).
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter {
            vars: self.vars(),
            fields: self.fields_in_parts().unwrap_or_default().iter(),
        }
    }

    /// `CONTENT_LENGTH` parsed, if present and a valid decimal number.
    pub fn content_length(&self) -> Option<u64> {
        core::str::from_utf8(self.var(b"CONTENT_LENGTH")?)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The request body as an [`io::Read`] over the host's `read` (PEP 3333 `wsgi.input`).
    pub fn body(&mut self) -> BodyReader<'_> {
        BodyReader {
            host: self.host,
            io: self.raw.io,
            _req: PhantomData,
        }
    }

    /// Reads request-body bytes without waiting (ABI 1.1); see [`TryRead`]. A 1.0 host answers
    /// `Failed(AbiError::State)`.
    pub fn try_read(&mut self, buf: &mut [u8]) -> TryRead {
        match self.host {
            // SAFETY: `io` is this request's handle and `call` runs on this thread now (from_raw's
            // contract).
            Some(host) => unsafe { try_read(host, self.raw.io, buf) },
            None => TryRead::Failed(AbiError::State),
        }
    }

    /// A [`Waker`] for this request (ABI 1.1), to hand to the work that will answer it from
    /// another thread; `None` on a 1.0 host or if the host could not make one.
    pub fn waker(&self) -> Option<Waker> {
        // SAFETY: as for `try_read`; the vtable is the server's, process-lifetime.
        self.host
            .and_then(|host| unsafe { Waker::new(host, self.raw.io) })
    }

    /// This request's host calls as a [`BodyIo`], which a deferred body's `next` gets: `call`
    /// is answered the same host calls (the header's "Host I/O phases"), so code that drives a
    /// response from `next` may run its first step in `call` and answer there when it can (the
    /// tower adapter does, for a service that is ready at once). `None` on a host without a
    /// vtable (some tests).
    pub fn io(&mut self) -> Option<BodyIo<'_>> {
        let host = self.host?;
        // SAFETY: `io` is this request's handle and `call` runs on this thread now (from_raw's
        // contract); the `BodyIo` borrows `self`, so it does not outlive the call.
        Some(unsafe { BodyIo::new(host, self.raw.io, self.logger()) })
    }

    /// Reads the whole request body (pre-sized from `CONTENT_LENGTH`, capped at 1 MiB).
    pub fn read_body(&mut self) -> io::Result<Vec<u8>> {
        let hint = self.content_length().unwrap_or(0).min(1 << 20) as usize;
        let mut buf = Vec::with_capacity(hint);
        io::Read::read_to_end(&mut self.body(), &mut buf)?;
        Ok(buf)
    }

    /// A logger whose messages are tagged with this request's app; it may be kept past the
    /// request (the log context lives as long as the process).
    pub fn logger(&self) -> Logger {
        // SAFETY: `from_raw`'s contract: `host` is null or the server's vtable, which (with
        // `log_ctx`) lives as long as the process.
        unsafe { Logger::from_raw(self.raw.host, self.raw.log_ctx) }
    }

    /// Sends one message to the host log.
    pub fn log(&self, level: LogLevel, msg: &str) {
        self.logger().log(level, msg);
    }

    /// Logs at [`LogLevel::Error`].
    pub fn error(&self, msg: &str) {
        self.log(LogLevel::Error, msg);
    }

    /// Logs at [`LogLevel::Warn`].
    pub fn warn(&self, msg: &str) {
        self.log(LogLevel::Warn, msg);
    }

    /// Logs at [`LogLevel::Info`].
    pub fn info(&self, msg: &str) {
        self.log(LogLevel::Info, msg);
    }

    /// Logs at [`LogLevel::Debug`].
    pub fn debug(&self, msg: &str) {
        self.log(LogLevel::Debug, msg);
    }

    /// Calls the host's `start_response` directly (PEP 3333). An empty `reason` lets the server use
    /// the standard phrase; `replace` sets `WS_RESPONSE_REPLACE` (PEP 3333 `exc_info`). Headers may
    /// be `&[(&str, &str)]` or `&[(&[u8], &[u8])]`; they are copied by the host during the call.
    ///
    /// An app that does this returns [`crate::Response::started`] so that the call trampoline does
    /// not start the response a second time.
    pub fn start_response<N, V>(
        &mut self,
        status: u16,
        reason: &str,
        headers: &[(N, V)],
        replace: bool,
    ) -> Result<(), AbiError>
    where
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let flags = if replace { WS_RESPONSE_REPLACE } else { 0 };
        let headers = headers.iter().map(|(n, v)| (n.as_ref(), v.as_ref()));
        with_pairs(headers, |pairs| {
            self.start_response_raw(status, reason.as_bytes(), pairs, flags)
        })
    }

    /// `start_response` with pairs already built; the pairs borrow memory valid during the call.
    pub(crate) fn start_response_raw(
        &self,
        status: u16,
        reason: &[u8],
        pairs: &[WsPair],
        flags: u32,
    ) -> Result<(), AbiError> {
        let f = self
            .host
            .and_then(|h| h.start_response)
            .ok_or(AbiError::State)?;
        // SAFETY: `io` is this request's handle (from_raw's contract); `reason` and `pairs` (and the
        // bytes they point to) are valid for the duration of the call, which is all the header lets
        // the host rely on.
        let rc = unsafe {
            f(
                self.raw.io,
                status,
                WsBytes::from_slice(reason),
                pairs.as_ptr(),
                pairs.len(),
                flags,
            )
        };
        AbiError::check(rc)
    }

    /// PEP 3333's legacy `write()`: sends `data` now, before the returned body's chunks. Requires a
    /// prior [`Request::start_response`].
    pub fn write(&mut self, data: &[u8]) -> Result<(), AbiError> {
        let f = self.host.and_then(|h| h.write).ok_or(AbiError::State)?;
        // SAFETY: `io` is this request's handle; `data` is valid during the call.
        AbiError::check(unsafe { f(self.raw.io, data.as_ptr(), data.len()) })
    }
}

/// Calls `f` with `headers` as `WsPair`s borrowing their bytes: from a stack array when there are
/// at most `STACK_HEADERS` of them (no allocation), else from a `Vec`.
pub(crate) fn with_pairs<'h, R>(
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    f: impl FnOnce(&[WsPair]) -> R,
) -> R {
    // Most responses have a few headers: a smaller array is less to clear.
    match headers.size_hint() {
        (_, Some(most)) if most <= FEW_HEADERS => with_pairs_in::<FEW_HEADERS, R>(headers, f),
        _ => with_pairs_in::<STACK_HEADERS, R>(headers, f),
    }
}

/// [`with_pairs`] from an array of `N` pairs on the stack (a `Vec` past them).
fn with_pairs_in<'h, const N: usize, R>(
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    f: impl FnOnce(&[WsPair]) -> R,
) -> R {
    let pair = |(n, v): (&'h [u8], &'h [u8])| WsPair {
        name: WsBytes::from_slice(n),
        value: WsBytes::from_slice(v),
    };
    let mut stack = [WsPair {
        name: WsBytes::EMPTY,
        value: WsBytes::EMPTY,
    }; N];
    let mut headers = headers.map(pair);
    let mut n = 0;
    for slot in stack.iter_mut() {
        match headers.next() {
            Some(p) => {
                *slot = p;
                n += 1;
            }
            None => return f(&stack[..n]),
        }
    }
    match headers.next() {
        None => f(&stack),
        Some(extra) => {
            let mut all = stack.to_vec();
            all.push(extra);
            all.extend(headers);
            f(&all)
        }
    }
}

/// CGI spelling of one header-name byte: upper case, `-` → `_`.
fn cgi_byte(h: u8) -> u8 {
    if h == b'-' {
        b'_'
    } else {
        h.to_ascii_uppercase()
    }
}

/// Iterator over environ `(name, value)` pairs; see [`Request::vars`].
#[derive(Clone, Debug)]
pub struct Vars<'a> {
    inner: core::slice::Iter<'a, WsPair>,
}

impl<'a> Iterator for Vars<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let p = self.inner.next()?;
        // SAFETY: a `Vars` is only made by `Request::vars`, whose `from_raw` contract makes every
        // pair's bytes valid and unmodified for 'a.
        Some(unsafe { (p.name.as_slice(), p.value.as_slice()) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// Iterator over request headers; see [`Request::headers`].
#[derive(Clone, Debug)]
pub struct HeaderIter<'a> {
    vars: Vars<'a>,
    /// The parts' fields, read after the environ (empty unless `WS_REQ_FIELDS_IN_PARTS`).
    fields: core::slice::Iter<'a, WsPair>,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (String, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.vars
            .by_ref()
            .find_map(|(k, v)| Self::from_var(k, v))
            .or_else(|| {
                self.fields.by_ref().find_map(|p| {
                    // SAFETY: the parts' pairs are the host's, valid as long as the request.
                    let (name, value) = unsafe { (p.name.as_slice(), p.value.as_slice()) };
                    let in_environ = name.eq_ignore_ascii_case(b"content-type")
                        || name.eq_ignore_ascii_case(b"content-length");
                    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
                    (!in_environ).then_some((name, value))
                })
            })
    }
}

impl<'a> HeaderIter<'a> {
    /// A header variable as `(lower-case-dashed name, value)`; `None` for another variable.
    fn from_var(k: &'a [u8], v: &'a [u8]) -> Option<(String, &'a [u8])> {
        let name = match k {
            b"CONTENT_TYPE" => return Some(("content-type".to_owned(), v)),
            b"CONTENT_LENGTH" => return Some(("content-length".to_owned(), v)),
            _ => k.strip_prefix(b"HTTP_")?,
        };
        let name: String = String::from_utf8_lossy(name)
            .chars()
            .map(|c| {
                if c == '_' {
                    '-'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        Some((name, v))
    }
}

/// The request body as [`io::Read`] (PEP 3333 `wsgi.input`), pulling from the host's `read`.
///
/// Borrows the [`Request`] mutably, so only one reader exists at a time. Host error codes become
/// [`io::Error`]s carrying an [`AbiError`] (recover it with [`AbiError::from_io`]); for example a
/// `WS_ERR_TOO_LARGE` body reads as `InvalidData` with the message "the request body exceeds the
/// server's limit (WS_ERR_TOO_LARGE)". After the end of the body, reads keep returning `Ok(0)`.
#[derive(Debug)]
pub struct BodyReader<'r> {
    host: Option<&'r WsHost>,
    io: *mut c_void,
    _req: PhantomData<&'r mut ()>,
}

impl io::Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let f = self
            .host
            .and_then(|h| h.read)
            .ok_or_else(|| io::Error::from(AbiError::State))?;
        let mut n = 0usize;
        // SAFETY: `io` is the request's handle (Request::from_raw's contract); `buf` is writable for
        // `buf.len()` bytes and `n` is a valid out-pointer, both for the duration of the call.
        let rc = unsafe { f(self.io, buf.as_mut_ptr(), buf.len(), &mut n) };
        AbiError::check(rc)?;
        if n > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "host read reported more bytes than the buffer holds",
            ));
        }
        Ok(n)
    }
}
