//! Compile `timer.c` (it starts threads: `-pthread`) into `libc_timer.so` beside the webserver
//! binary (`webserver c_timer:app`).

include!("../c_app_build.rs");

fn main() {
    build_c_app("c-timer", "timer.c", "libc_timer.so", &["-pthread"]);
}
