//! ABI 1.3 request parts: the head as the server parsed it, for an app that builds its own
//! request object (the tower adapter's `http::Request`) instead of converting the environ back.

use super::request::Request;
use crate::raw::{WsPair, WsRequestParts, WS_OK};

/// A request's head as the server parsed it ([`Request::parts`]): server-owned bytes valid as
/// long as the request's environ.
#[derive(Clone, Copy, Debug)]
pub struct Parts<'a> {
    /// 10 (HTTP/1.0), 11 (HTTP/1.1) or 20 (HTTP/2).
    pub version: u16,
    /// The method token.
    pub method: &'a [u8],
    /// HTTP/2's `:scheme`; empty for HTTP/1.
    pub scheme: &'a [u8],
    /// HTTP/2's `:authority`; empty when absent and for HTTP/1.
    pub authority: &'a [u8],
    /// HTTP/1: the request-target as sent; HTTP/2: `:path`. Not decoded.
    pub target: &'a [u8],
    fields: &'a [WsPair],
}

impl<'a> Parts<'a> {
    /// The header fields in order, as received (HTTP/2: lowercase names; repeats not joined).
    pub fn fields(&self) -> impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + Clone + 'a {
        // SAFETY: the pairs came from the host's `request_parts`, whose bytes stay valid and
        // unmodified until the request's `close` (after every borrow of the `Request`).
        self.fields
            .iter()
            .map(|p| unsafe { (p.name.as_slice(), p.value.as_slice()) })
    }
}

impl<'a> Request<'a> {
    /// ABI 1.3: the request's parsed head, for an app exported with
    /// `flags = WS_APP_REQUEST_PARTS`. `None` on a server that predates `request_parts`, or
    /// without the flag: read the environ ([`Request::vars`]) then.
    pub fn parts(&self) -> Option<Parts<'a>> {
        let host = self.host()?;
        let f = host.has_request_parts().then_some(host.request_parts)??;
        let mut raw: *const WsRequestParts = core::ptr::null();
        // SAFETY: `io` is this request's handle, answered on the thread running its `call`
        // (the `from_raw` contract); the out-pointer is valid for the call.
        let rc = unsafe { f(self.as_raw().io, &mut raw) };
        if rc != WS_OK {
            return None;
        }
        // SAFETY: on WS_OK the host points to parts it owns until `close`, after 'a ends.
        let raw = unsafe { raw.as_ref() }?;
        let fields = if raw.fields.is_null() || raw.n_fields == 0 {
            &[][..]
        } else {
            // SAFETY: `n_fields` pairs, server-owned until `close` (see above).
            unsafe { core::slice::from_raw_parts(raw.fields, raw.n_fields) }
        };
        // SAFETY: every slice is the host's, valid as long as the parts.
        let bytes = |b: crate::raw::WsBytes| unsafe { b.as_slice() };
        Some(Parts {
            version: raw.version,
            method: bytes(raw.method),
            scheme: bytes(raw.scheme),
            authority: bytes(raw.authority),
            target: bytes(raw.target),
            fields,
        })
    }
}
