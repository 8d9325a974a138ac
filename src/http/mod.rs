//! Pure HTTP/1.1 protocol code over bytes (RFC 9112, RFC 9110): no sockets, no threads.
//!
//! One file per protocol stage (STYLE.md #5): `request` parses the request head and enforces
//! limits, `fields` applies Host / framing / Connection semantics to it, `target` splits the
//! request-target, `body` decodes message bodies, `response` encodes response heads and
//! chunks, `percent` decodes percent-escapes. This file only declares and re-exports.

pub(crate) mod body;
pub(crate) mod fields;
pub(crate) mod percent;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod target;

// Re-exports for callers; not every item is used by every build of the server.
#[allow(unused_imports)]
pub(crate) use body::{BodyDecoder, BodyError};
#[allow(unused_imports)]
pub(crate) use percent::percent_decode_into;
#[allow(unused_imports)]
pub(crate) use request::{header_value, parse_head, BodyFraming, Limits, ParseError, RequestHead};
#[allow(unused_imports)]
pub(crate) use response::{
    choose_framing, encode_chunk, encode_continue, encode_error, encode_head, encode_last_chunk,
    is_hop_by_hop, is_token, reason_phrase, valid_header_value, DateCache, Framing, Head,
};
#[allow(unused_imports)]
pub(crate) use target::{split_target, split_target_for, valid_host};
