//! Trailer fields both ways (ABI 1.3): the request's, readable once its body was read to the end
//! ([`BodyIo::request_trailers`]), and the response's, sent after its body
//! ([`BodyIo::set_trailers`]) — HTTP/2's trailing HEADERS, HTTP/1.1's chunked trailer section.
//! What gRPC's `grpc-status` travels in.
//!
//! On a server older than 1.3 both answer [`AbiError::State`]; an app that cannot do without
//! them refuses to load there with [`crate::InitContext::require_abi_1_3`].

use super::error::AbiError;
use super::request::with_pairs;
use super::{BodyIo, Request};
use crate::raw::{WsHost, WsPair, WS_OK, WS_PENDING};

/// Trailer fields as `(name, value)` pairs, borrowed from the host until the request ends.
pub type Fields<'a> = Vec<(&'a [u8], &'a [u8])>;

impl BodyIo<'_> {
    /// The request's trailer fields, as `(name, value)` pairs (names as the client spelled them;
    /// HTTP/2's are lowercase): `Ok(None)` while the body has not been read to its end (read on,
    /// then ask again), `Ok(Some(empty))` when the client sent none.
    pub fn request_trailers(&mut self) -> Result<Option<Fields<'_>>, AbiError> {
        // SAFETY: `io` is the running request's handle on this thread (`BodyIo::new`'s contract).
        unsafe { request_trailers(Some(self.host()), self.raw_io()) }
    }

    /// Sets the response's trailer fields (replacing earlier ones), sent after the body; copied
    /// during the call. [`AbiError::Invalid`] for a field a trailer must not carry
    /// (Content-Length, Content-Type, hop-by-hop fields, ...) or a bad name or value.
    pub fn set_trailers<'h>(
        &mut self,
        fields: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    ) -> Result<(), AbiError> {
        let host = self.host();
        let Some(f) = host.has_trailers().then_some(host.set_trailers).flatten() else {
            return Err(AbiError::State);
        };
        let io = self.raw_io();
        with_pairs(fields, |pairs| {
            // SAFETY: `io` is the running request's handle on this thread (`BodyIo::new`'s
            // contract); `pairs` and every slice in them are valid for the call, all the host
            // keeps is its copy.
            AbiError::check(unsafe { f(io, pairs.as_ptr(), pairs.len(), 0) })
        })
    }
}

impl Request<'_> {
    /// [`BodyIo::request_trailers`] during `call`: the request's trailer fields once `try_read`
    /// or `read` met the body's end there (a body the server held whole when `call` began).
    pub fn request_trailers(&mut self) -> Result<Option<Fields<'_>>, AbiError> {
        // SAFETY: `io` is this request's handle and `call` runs on this thread now (`from_raw`'s
        // contract).
        unsafe { request_trailers(self.host(), self.as_raw().io) }
    }
}

/// `host.request_trailers` for `io`.
///
/// # Safety
/// `io` is the running request's handle and the call is made on its thread, during `call` or
/// `next`; the pairs are borrowed for as long as the caller's borrow of the request (the host
/// keeps them until `close`).
unsafe fn request_trailers<'r>(
    host: Option<&WsHost>,
    io: *mut core::ffi::c_void,
) -> Result<Option<Fields<'r>>, AbiError> {
    let Some(f) = host
        .filter(|host| host.has_trailers())
        .and_then(|host| host.request_trailers)
    else {
        return Err(AbiError::State);
    };
    let mut fields: *const WsPair = core::ptr::null();
    let mut n = 0usize;
    // SAFETY: the caller's contract for `io`; both out-pointers are valid for the call.
    let rc = unsafe { f(io, &mut fields, &mut n) };
    match rc {
        WS_PENDING => Ok(None),
        WS_OK if n == 0 || fields.is_null() => Ok(Some(Vec::new())),
        WS_OK => {
            // SAFETY: the host hands `n` pairs it owns until the request's `close`, which comes
            // after the caller's borrow ends.
            let pairs = unsafe { core::slice::from_raw_parts(fields, n) };
            // SAFETY: every pair's slices are the host's, valid as long as the array.
            let fields = pairs
                .iter()
                .map(|p| unsafe { (p.name.as_slice(), p.value.as_slice()) })
                .collect();
            Ok(Some(fields))
        }
        code => Err(AbiError::check(code).err().unwrap_or(AbiError::Other(code))),
    }
}
