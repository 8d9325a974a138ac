//! Nothing in Rust: this crate exists so that `cargo build` compiles `timer.c` (see `build.rs`)
//! into `libc_timer.so` beside the `webserver` binary, like the Rust sample apps.
