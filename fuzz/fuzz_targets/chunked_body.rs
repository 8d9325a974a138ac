//! `cargo +nightly fuzz run chunked_body`: the chunked body decoder (see `webserver::fuzzing::chunked_body`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| webserver::fuzzing::chunked_body(data));
