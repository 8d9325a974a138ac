//! Pure HTTP/1.1 protocol code over bytes (RFC 9112, RFC 9110): no sockets, no threads.
//!
//! One file per protocol stage (STYLE.md #5): `request` parses the request head and enforces
//! limits, `fields` applies Host / framing / Connection semantics to it, `target` splits the
//! request-target, `body` decodes message bodies, `encoder` is the response state machine
//! (framing, lazy head, error responses, when to write), `response_fields` validates an app's
//! status and headers once, `response` encodes response heads and chunks, `percent` decodes
//! percent-escapes. `selfcheck` and `proptests` check that the parser and decoder decide the
//! same whatever the read boundaries (issue #4). This file only declares and re-exports.

pub(crate) mod body;
pub(crate) mod encoder;
pub(crate) mod fields;
pub(crate) mod percent;
#[cfg(test)]
mod proptests;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod response_fields;
// Split-consistency checks shared by the property tests and the fuzz targets (fuzz/).
#[cfg(any(test, fuzzing))]
pub(crate) mod selfcheck;
pub(crate) mod target;
