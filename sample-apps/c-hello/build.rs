//! Compile `hello.c` into `libc_hello.so` beside the webserver binary (`webserver c_hello:app`).

include!("../c_app_build.rs");

fn main() {
    build_c_app("c-hello", "hello.c", "libc_hello.so", &[]);
}
