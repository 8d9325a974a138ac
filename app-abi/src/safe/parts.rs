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

    /// The fields as the host gave them.
    pub(crate) fn raw_fields(&self) -> &'a [WsPair] {
        self.fields
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
        // SAFETY: `n_fields` pairs, server-owned until `close` (see above).
        let fields = unsafe { raw.field_pairs() };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::{WsBytes, WsHost, WsRequest, WS_ERR_STATE};
    use core::ffi::c_void;

    struct Shared<T>(T);
    // SAFETY: immutable static test data (pointers to static bytes).
    unsafe impl<T> Sync for Shared<T> {}

    static FIELDS: Shared<[WsPair; 1]> = Shared([WsPair {
        name: WsBytes::from_slice(b"x-tag"),
        value: WsBytes::from_slice(b"a"),
    }]);

    static PARTS: Shared<WsRequestParts> = Shared(WsRequestParts {
        size: core::mem::size_of::<WsRequestParts>() as u32,
        version: 20,
        reserved: 0,
        method: WsBytes::from_slice(b"POST"),
        scheme: WsBytes::from_slice(b"http"),
        authority: WsBytes::from_slice(b"example.test"),
        target: WsBytes::from_slice(b"/a%2Fb"),
        fields: FIELDS.0.as_ptr(),
        n_fields: 1,
    });

    unsafe extern "C" fn kept(_io: *mut c_void, parts: *mut *const WsRequestParts) -> i32 {
        // SAFETY: the caller passes a writable out-pointer.
        unsafe { *parts = &PARTS.0 };
        WS_OK
    }

    unsafe extern "C" fn refused(_io: *mut c_void, _parts: *mut *const WsRequestParts) -> i32 {
        WS_ERR_STATE
    }

    /// What `Request::parts` gave: version, target, fields.
    type Got = (u16, Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>);

    fn parts_with(host: &WsHost) -> Option<Got> {
        let raw = WsRequest {
            size: core::mem::size_of::<WsRequest>() as u32,
            flags: 0,
            environ: core::ptr::null(),
            environ_len: 0,
            io: core::ptr::null_mut(),
            host,
            log_ctx: core::ptr::null(),
        };
        // SAFETY: an empty environ and a host whose only callback ignores `io`.
        let req = unsafe { Request::from_raw(&raw) };
        let parts = req.parts()?;
        let fields = parts
            .fields()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        Some((parts.version, parts.target.to_vec(), fields))
    }

    /// With `WS_REQ_FIELDS_IN_PARTS` the environ has no `HTTP_*`: `var`, `header` and
    /// `headers` answer from the parts; without it they read the environ alone (and never ask
    /// the host, which would refuse an app without the flag).
    #[test]
    fn fields_left_out_of_the_environ_are_read_from_the_parts() {
        use crate::raw::WS_REQ_FIELDS_IN_PARTS;
        let host = WsHost {
            request_parts: Some(kept),
            ..WsHost::EMPTY
        };
        let environ = [WsPair {
            name: WsBytes::from_slice(b"CONTENT_TYPE"),
            value: WsBytes::from_slice(b"text/plain"),
        }];
        let read = |flags: u32| {
            let raw = WsRequest {
                size: core::mem::size_of::<WsRequest>() as u32,
                flags,
                environ: environ.as_ptr(),
                environ_len: environ.len(),
                io: core::ptr::null_mut(),
                host: &host,
                log_ctx: core::ptr::null(),
            };
            // SAFETY: a one-pair environ and a host whose only callback ignores `io`.
            let req = unsafe { Request::from_raw(&raw) };
            (
                req.var(b"HTTP_X_TAG").map(<[u8]>::to_vec),
                req.header("X-Tag").map(<[u8]>::to_vec),
                req.headers()
                    .map(|(n, v)| (n, v.to_vec()))
                    .collect::<Vec<_>>(),
            )
        };
        let (var, header, headers) = read(WS_REQ_FIELDS_IN_PARTS);
        assert_eq!(var.as_deref(), Some(&b"a"[..]));
        assert_eq!(header.as_deref(), Some(&b"a"[..]));
        assert_eq!(
            headers,
            [
                ("content-type".to_owned(), b"text/plain".to_vec()),
                ("x-tag".to_owned(), b"a".to_vec())
            ]
        );
        let (var, header, headers) = read(0);
        assert_eq!((var, header), (None, None));
        assert_eq!(headers.len(), 1);
    }

    #[test]
    fn parts_come_from_a_host_that_keeps_them_and_none_otherwise() {
        let new = WsHost {
            request_parts: Some(kept),
            ..WsHost::EMPTY
        };
        let (version, target, fields) = parts_with(&new).unwrap();
        assert_eq!((version, &target[..]), (20, &b"/a%2Fb"[..]));
        assert_eq!(fields, [(b"x-tag".to_vec(), b"a".to_vec())]);
        // Without WS_APP_REQUEST_PARTS the host refuses: the app reads the environ.
        let without_flag = WsHost {
            request_parts: Some(refused),
            ..WsHost::EMPTY
        };
        assert!(parts_with(&without_flag).is_none());
        // A host of 1.3 that ends before request_parts has none, whatever lies past its size.
        let older = WsHost {
            size: core::mem::offset_of!(WsHost, request_parts) as u32,
            request_parts: Some(kept),
            ..WsHost::EMPTY
        };
        assert!(parts_with(&older).is_none());
    }
}
