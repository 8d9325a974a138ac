//! `cargo +nightly fuzz run chunked_body`: the chunked body decoder (see `webserver_fuzz::chunked_body`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| webserver_fuzz::chunked_body(data));
