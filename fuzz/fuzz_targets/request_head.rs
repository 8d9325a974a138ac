//! `cargo +nightly fuzz run request_head`: the request-head parser (see `webserver::fuzzing::request_head`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| webserver::fuzzing::request_head(data));
