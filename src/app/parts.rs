//! ABI 1.3 request parts: a request's head as parsed (method, target as sent, HTTP/2's scheme
//! and authority, the fields one by one), kept for an app that sets `WS_APP_REQUEST_PARTS` and
//! reads it with `host.request_parts` instead of converting the environ back (the tower
//! adapter's `http::Request`).
//!
//! Like the environ, the bytes are copied into an arena the connection reuses, so they stay
//! valid however the read buffer moves while the body is read, and travel with a request that
//! parks; the `ws_request_parts` itself is boxed so the pointer the app gets does not move.

use app_abi::raw::{WsBytes, WsPair, WsRequestParts};

use crate::http::forwarded::is_forwarding_header;
use crate::http::grammar::is_field_name;

/// `WsRequestParts::version` of an HTTP/2 stream.
pub(crate) const VERSION_HTTP2: u16 = 20;

/// What the parts are made from: the head as the connection parsed it.
pub(crate) struct Head<'a, H> {
    /// 10, 11 or [`VERSION_HTTP2`].
    pub(crate) version: u16,
    pub(crate) method: &'a [u8],
    pub(crate) scheme: &'a [u8],
    pub(crate) authority: &'a [u8],
    pub(crate) target: &'a [u8],
    pub(crate) fields: H,
    /// The peer is not a trusted proxy: forwarding fields are left out, as from the environ.
    pub(crate) strip_forwarding: bool,
    /// Bytes that hold most pieces (an HTTP/1 head): copied in one piece, and a piece inside
    /// it becomes a span of that copy instead of a copy of its own. Empty for none.
    pub(crate) block: &'a [u8],
}

/// The server's policy for a request field, the one place both the environ and the parts
/// apply it: a name with an underscore is left out (`X_Forwarded_For` would pass for a proxy's
/// `X-Forwarded-For` once converted to `HTTP_X_FORWARDED_FOR`), and so are an untrusted peer's
/// forwarding fields (`strip_forwarding`: a client's claim is not the app's to believe).
/// `underscore`: whether `name` holds one, found by the caller's own pass over the name (the
/// environ's CGI spelling), so the name is not walked twice.
#[inline]
pub(crate) fn admits(name: &[u8], underscore: bool, strip_forwarding: bool) -> bool {
    // Inlined for the usual field (no underscore, from a trusted peer); the rest is not.
    (!underscore && !strip_forwarding) || admits_checked(name, underscore, strip_forwarding)
}

/// [`admits`] for a field it must look at.
#[inline(never)]
fn admits_checked(name: &[u8], underscore: bool, strip_forwarding: bool) -> bool {
    if underscore {
        log::debug!(
            "dropped header with an underscore: {}",
            String::from_utf8_lossy(name)
        );
        return false;
    }
    if strip_forwarding && is_forwarding_header(name) {
        log::debug!(
            "dropped {} from a peer not in --forwarded-allow-ips",
            String::from_utf8_lossy(name)
        );
        return false;
    }
    true
}

/// The fields the environ of an app that reads the parts still carries (or is made from),
/// noted while the parts are filled so the fields are walked once: the first of each.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Noted<'h> {
    pub(crate) host: Option<&'h [u8]>,
    pub(crate) content_type: Option<&'h [u8]>,
    pub(crate) content_length: Option<&'h [u8]>,
    /// HTTP/2's `:authority` when no Host field came: the environ keeps it as `HTTP_HOST`, the
    /// one field a flagged app's environ still carries, since the parts hold it apart from the
    /// fields and the access log, `Request::header("host")` and the tower adapter's fallback
    /// would otherwise find no Host at all.
    pub(crate) authority_as_host: Option<&'h [u8]>,
}

impl<'h> Noted<'h> {
    fn note(&mut self, name: &[u8], value: &'h [u8]) {
        // HTTP/2's names are lower case: a `memcmp` finds them; the byte-by-byte case-blind
        // comparison only runs for an HTTP/1 spelling.
        let is = |lower: &[u8]| is_field_name(name, lower);
        let slot = match name.len() {
            4 if is(b"host") => &mut self.host,
            12 if is(b"content-type") => &mut self.content_type,
            14 if is(b"content-length") => &mut self.content_length,
            _ => return,
        };
        slot.get_or_insert(value);
    }
}

/// The parts of the request last filled, reused from request to request.
pub(crate) struct Parts {
    arena: Vec<u8>,
    /// The fields, pointing into `arena` once `fill` returns (while it runs, their pointers
    /// hold offsets into it: the arena may still grow and move).
    pairs: Vec<WsPair>,
    /// Boxed: its address is what the app holds until `close`, whatever moves this struct.
    raw: Box<WsRequestParts>,
}

impl Default for Parts {
    fn default() -> Self {
        Parts {
            arena: Vec::new(),
            pairs: Vec::new(),
            raw: Box::new(WsRequestParts {
                size: std::mem::size_of::<WsRequestParts>() as u32,
                version: 0,
                reserved: 0,
                method: WsBytes::EMPTY,
                scheme: WsBytes::EMPTY,
                authority: WsBytes::EMPTY,
                target: WsBytes::EMPTY,
                fields: std::ptr::null(),
                n_fields: 0,
            }),
        }
    }
}

// SAFETY: every pointer in `pairs` and `raw` points into `arena` or `pairs`, both owned here
// (their heap buffers do not move with the struct), and `fill` rebuilds them whenever either
// changes.
unsafe impl Send for Parts {}

impl Parts {
    /// Copies `head` in; the result is what [`Parts::raw`] points to until the next `fill`.
    /// Returns the fields the environ still carries, found on the way.
    pub(crate) fn fill<'h, H>(&mut self, head: Head<'_, H>) -> Noted<'h>
    where
        H: Iterator<Item = (&'h [u8], &'h [u8])>,
    {
        self.arena.clear();
        self.pairs.clear();
        self.arena.extend_from_slice(head.block);
        let block = head.block.as_ptr_range();
        let block = (block.start as usize, block.end as usize);
        let [method, scheme, authority, target] =
            [head.method, head.scheme, head.authority, head.target]
                .map(|bytes| self.place(bytes, block));
        let mut noted = Noted::default();
        for (name, value) in head.fields {
            // Folded without an early exit, which the compiler unrolls: names are short, and
            // `contains` (a `memchr` loop) costs about seven instructions a byte on them.
            let underscore = name.iter().fold(false, |found, &b| found | (b == b'_'));
            if !admits(name, underscore, head.strip_forwarding) {
                continue;
            }
            noted.note(name, value);
            let pair = WsPair {
                name: self.place(name, block),
                value: self.place(value, block),
            };
            self.pairs.push(pair);
        }
        // The arena is complete: offsets become addresses, in one pass.
        let base = self.arena.as_ptr();
        let at = |offset: WsBytes| WsBytes {
            // SAFETY: `place` recorded every offset from this arena's own lengths, so it is
            // within (or one past the end of) the allocation.
            ptr: unsafe { base.add(offset.ptr as usize) },
            len: offset.len,
        };
        for pair in &mut self.pairs {
            *pair = WsPair {
                name: at(pair.name),
                value: at(pair.value),
            };
        }
        *self.raw = WsRequestParts {
            size: std::mem::size_of::<WsRequestParts>() as u32,
            version: head.version,
            reserved: 0,
            method: at(method),
            scheme: at(scheme),
            authority: at(authority),
            target: at(target),
            fields: self.pairs.as_ptr(),
            n_fields: self.pairs.len(),
        };
        noted
    }

    /// The fields last filled, (name, value) as received (the access log's `HTTP_*`).
    /// Read back through the arena by offset, without `unsafe`: only the access log asks.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let base = self.arena.as_ptr().addr();
        let text = move |bytes: &WsBytes| {
            let start = bytes.ptr.addr().wrapping_sub(base);
            self.arena
                .get(start..start.saturating_add(bytes.len))
                .unwrap_or_default()
        };
        self.pairs
            .iter()
            .map(move |p| (text(&p.name), text(&p.value)))
    }

    /// The parts last filled, at an address that does not change while this struct lives.
    pub(crate) fn raw(&self) -> *const WsRequestParts {
        &*self.raw
    }

    /// Where `bytes` lie in the arena, as an offset in `ptr` ([`Parts::fill`] makes it an
    /// address once the arena is complete): in the block's copy (`block`: the block's address
    /// range), else in a copy of their own.
    #[inline]
    fn place(&mut self, bytes: &[u8], (start, end): (usize, usize)) -> WsBytes {
        let at = bytes.as_ptr() as usize;
        let offset = if at >= start && at + bytes.len() <= end {
            at - start
        } else {
            let from = self.arena.len();
            self.arena.extend_from_slice(bytes);
            from
        };
        WsBytes {
            ptr: std::ptr::without_provenance(offset),
            len: bytes.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: WsBytes) -> String {
        // SAFETY: the bytes point into the Parts that outlives this call.
        String::from_utf8_lossy(unsafe { b.as_slice() }).into_owned()
    }

    #[test]
    fn fields_arrive_as_received_minus_the_servers_policy() {
        let fields: [(&[u8], &[u8]); 6] = [
            (b"Host", b"example.test"),
            (b"X-Tag", b"a"),
            (b"x-tag", b"b"),
            (b"X_Tag", b"spoofed"),
            (b"X-Forwarded-For", b"1.2.3.4"),
            (b"Cookie", b"a=1"),
        ];
        let block = b"Host: example.test";
        for (strip, block) in [(false, &b""[..]), (true, &block[..])] {
            let mut parts = Parts::default();
            let fields = fields.iter().copied().map(|(n, v)| match n {
                // From the block: the span of its copy must give the same bytes.
                b"Host" if !block.is_empty() => (&block[..4], &block[6..]),
                _ => (n, v),
            });
            let fields = fields.collect::<Vec<_>>();
            parts.fill(Head {
                version: 11,
                method: b"POST",
                scheme: b"",
                authority: b"",
                target: b"/a%2Fb?q=1",
                fields: fields.iter().copied(),
                strip_forwarding: strip,
                block,
            });
            // SAFETY: `raw` points into `parts`, alive here.
            let raw = unsafe { &*parts.raw() };
            assert_eq!(raw.version, 11);
            assert_eq!(text(raw.method), "POST");
            assert_eq!(text(raw.target), "/a%2Fb?q=1");
            assert_eq!(text(raw.scheme), "");
            // SAFETY: as above.
            let got: Vec<(String, String)> =
                unsafe { std::slice::from_raw_parts(raw.fields, raw.n_fields) }
                    .iter()
                    .map(|p| (text(p.name), text(p.value)))
                    .collect();
            let mut want = vec![
                ("Host", "example.test"),
                ("X-Tag", "a"),
                ("x-tag", "b"),
                ("X-Forwarded-For", "1.2.3.4"),
                ("Cookie", "a=1"),
            ];
            if strip {
                want.remove(3);
            }
            let want: Vec<(String, String)> = want
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            assert_eq!(got, want, "strip_forwarding {strip}");
        }
    }

    #[test]
    fn the_first_of_each_noted_field_is_found_in_either_spelling() {
        let mut noted = Noted::default();
        let sent = "content-type: application/grpc\nContent-Type: text/plain\n\
                    CONTENT-LENGTH: 7\nHost: example.test\nhosts: x";
        for (name, value) in sent.lines().filter_map(|line| line.split_once(": ")) {
            noted.note(name.as_bytes(), value.as_bytes());
        }
        assert_eq!(noted.content_type, Some(&b"application/grpc"[..]));
        assert_eq!(noted.content_length, Some(&b"7"[..]));
        assert_eq!(noted.host, Some(&b"example.test"[..]));
    }
}
