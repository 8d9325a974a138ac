//! Nothing in Rust: this crate exists so that `cargo build` compiles `hello.c` (see `build.rs`)
//! into `libc_hello.so` beside the `webserver` binary, like the Rust sample apps.
