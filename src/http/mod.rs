//! Pure HTTP/1.1 protocol code over bytes (RFC 9112, RFC 9110): no sockets, no threads.
//!
//! One file per protocol question, each answered once: `grammar` holds the shared byte grammar
//! (tokens, whitespace, digits, the decimal parser); `scan` decides where a request head ends
//! and enforces its size limits and line endings, resumably, as bytes arrive; `request` parses
//! a complete head (httparse) once; `fields` applies Host / framing / Connection / Expect
//! semantics to it; `target` splits the request-target into path, query and authority; `body`
//! decodes message bodies and applies `--max-body`; `error` is why a head was rejected;
//! `encoder` is the response state machine (framing, the lazy head, error responses, when to
//! write); `response_fields` validates an app's status and headers once; `response` writes
//! response heads and chunks as bytes; `percent` decodes percent-escapes; `upgrade_offer` reads what an
//! upgrade request offers (a WebSocket opening handshake). Behind proxies:
//! `proxy_protocol` reads the PROXY header a proxy sends first, `peer_trust` is
//! `--forwarded-allow-ips`, and `forwarded` reads `Forwarded` / `X-Forwarded-*` from a trusted
//! peer. The files
//! depend on each other in that order, without cycles. `selfcheck` and `proptests` check that
//! the scanner, parser and decoder decide the same whatever the read boundaries (issue #4).
//! This file only declares the modules.

pub(crate) mod body;
pub(crate) mod encoder;
pub(crate) mod error;
pub(crate) mod fields;
pub(crate) mod forwarded;
pub(crate) mod grammar;
pub(crate) mod peer_trust;
pub(crate) mod percent;
#[cfg(test)]
mod proptests;
pub(crate) mod proxy_protocol;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod response_fields;
pub(crate) mod scan;
// Split-consistency checks shared by the property tests and the fuzz targets (fuzz/).
#[cfg(any(test, fuzzing))]
pub(crate) mod selfcheck;
pub(crate) mod target;
pub(crate) mod upgrade_offer;
