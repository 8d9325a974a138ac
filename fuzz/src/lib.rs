//! The server is a binary crate, so the fuzz targets compile its pure protocol module
//! (`src/http`, which depends only on httparse, httpdate and log) straight from the source tree:
//! what is fuzzed is exactly what the server runs. `cfg(fuzzing)` (set by cargo-fuzz) enables
//! `http::selfcheck`, the split-consistency checks the property tests use too.
#![allow(dead_code)] // the server's own callers of src/http are not part of this crate

#[path = "../../src/http/mod.rs"]
mod http;

/// Request head parser (default and small limits) fed whole and in pieces, then the body it
/// frames, then the chunked decoder on the same bytes. The first 8 bytes seed the split points.
/// Panics on any disagreement.
pub fn request_head(data: &[u8]) {
    http::selfcheck::check_all(data);
}

/// Chunked decoder fed whole and in pieces with small output buffers. The first 8 bytes seed
/// the split points. Panics on any disagreement.
pub fn chunked_body(data: &[u8]) {
    http::selfcheck::check_chunked(data);
}
