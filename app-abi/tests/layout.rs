//! The C header and the Rust mirror agree on every size, alignment, offset and constant.
//!
//! `layout.c` is compiled against `include/webserver_app.h` with the system C compiler (`$CC`, else
//! `cc`) and prints one `kind key value` line per fact; this test builds the same table from
//! `app_abi::raw` with `size_of`/`align_of`/`offset_of!` and requires the two tables to be equal —
//! a field missing on either side is a failure too. `layout_assert.c` pins the LP64 numbers from the
//! C side with `_Static_assert`, as `raw.rs` pins them from the Rust side.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use app_abi::raw::*;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".to_owned())
}

/// Runs `cmd`, panicking with its output if it cannot start or fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is a C compiler installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn c_flags(cmd: &mut Command) -> &mut Command {
    cmd.args([
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-Wpedantic",
        "-Werror",
        "-I",
    ])
    .arg(manifest_dir().join("include"))
}

/// `size_of` the type of a field, from a projection closure (`|x: &T| &x.field`).
fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    core::mem::size_of::<F>()
}

/// Adds `size`, `align`, and for each field `offset` and `fieldsize` lines for one struct.
macro_rules! layout {
    ($table:ident, $cname:literal, $ty:ty { $($field:ident),+ $(,)? }) => {{
        $table.insert(format!("size {}", $cname), core::mem::size_of::<$ty>() as i128);
        $table.insert(format!("align {}", $cname), core::mem::align_of::<$ty>() as i128);
        $(
            $table.insert(
                format!("offset {}.{}", $cname, stringify!($field)),
                core::mem::offset_of!($ty, $field) as i128,
            );
            $table.insert(
                format!("fieldsize {}.{}", $cname, stringify!($field)),
                field_size(|x: &$ty| &x.$field) as i128,
            );
        )+
    }};
}

macro_rules! constants {
    ($table:ident, $($name:ident),+ $(,)?) => {
        $( $table.insert(format!("const {}", stringify!($name)), $name as i128); )+
    };
}

fn rust_table() -> BTreeMap<String, i128> {
    let mut t = BTreeMap::new();
    layout!(t, "ws_bytes", WsBytes { ptr, len });
    layout!(t, "ws_pair", WsPair { name, value });
    layout!(
        t,
        "ws_host",
        WsHost {
            size,
            reserved,
            read,
            start_response,
            write,
            log,
            try_read,
            waker_new,
            waker_wake,
            waker_free,
            upgrade,
            stream_read,
            stream_write,
            stream_close,
            websocket_accept,
            websocket_recv,
            websocket_send,
            websocket_close,
            send_file,
            request_trailers,
            set_trailers,
            waker_wake_here,
            request_parts
        }
    );
    layout!(
        t,
        "ws_request_parts",
        WsRequestParts {
            size,
            version,
            reserved,
            method,
            scheme,
            authority,
            target,
            fields,
            n_fields
        }
    );
    layout!(
        t,
        "ws_conn_handler",
        WsConnHandler {
            size,
            reserved,
            ctx,
            on_event,
            release
        }
    );
    layout!(
        t,
        "ws_message",
        WsMessage {
            kind,
            close_code,
            reserved,
            data
        }
    );
    layout!(
        t,
        "ws_request",
        WsRequest {
            size,
            flags,
            environ,
            environ_len,
            io,
            host,
            log_ctx
        }
    );
    layout!(
        t,
        "ws_body",
        WsBody {
            size,
            reserved,
            ctx,
            next,
            close,
            length_hint
        }
    );
    layout!(
        t,
        "ws_init",
        WsInit {
            size,
            reserved,
            host,
            log_ctx,
            error_buf,
            error_cap,
            error_len,
            args,
            n_args
        }
    );
    layout!(
        t,
        "ws_app",
        WsApp {
            magic,
            abi_major,
            abi_minor,
            size,
            flags,
            name,
            version,
            init,
            call,
            shutdown
        }
    );
    constants!(
        t,
        WS_APP_MAGIC,
        WS_ABI_MAJOR,
        WS_ABI_MINOR,
        WS_APP_SINGLE_THREADED,
        WS_APP_NONBLOCKING,
        WS_APP_REQUEST_PARTS,
        WS_APP_NO_ENVIRON,
        WS_APP_LENGTH_ENDS_BODY,
        WS_REQ_MULTITHREAD,
        WS_REQ_MULTIPROCESS,
        WS_REQ_RUN_ONCE,
        WS_REQ_WEBSOCKET,
        WS_REQ_FIELDS_IN_PARTS,
        WS_EV_READABLE,
        WS_EV_WRITABLE,
        WS_EV_CLOSED,
        WS_EV_GOING_AWAY,
        WS_MSG_TEXT,
        WS_MSG_BINARY,
        WS_MSG_CLOSE,
        WS_RESPONSE_REPLACE,
        WS_RESPONSE_CLOSE,
        WS_LENGTH_UNKNOWN,
        WS_LOG_ERROR,
        WS_LOG_WARN,
        WS_LOG_INFO,
        WS_LOG_DEBUG,
        WS_LOG_TRACE,
        WS_OK,
        WS_ERR_CLIENT_GONE,
        WS_ERR_TOO_LARGE,
        WS_ERR_TIMEOUT,
        WS_ERR_BAD_BODY,
        WS_ERR_INVALID,
        WS_ERR_STATE,
        WS_ERR_APP,
        WS_PENDING,
        WS_FILE_RANGES,
        WS_FILE_VALIDATORS,
        WS_HOST_SIZE_V1_0,
        WS_HOST_SIZE_V1_1,
        WS_HOST_SIZE_V1_2,
        WS_INIT_SIZE_V1_0,
    );
    // WS_HAS_FIELD, as the Rust side answers the same question.
    let host = |size| WsHost {
        size,
        ..WsHost::EMPTY
    };
    let init = |size| WsInit {
        size,
        reserved: 0,
        host: core::ptr::null(),
        log_ctx: core::ptr::null(),
        error_buf: core::ptr::null_mut(),
        error_cap: 0,
        error_len: core::ptr::null_mut(),
        args: core::ptr::null(),
        n_args: 0,
    };
    let old_host = host(WS_HOST_SIZE_V1_0);
    let new_host = host(core::mem::size_of::<WsHost>() as u32);
    t.insert("const has.v1_0.host.log".into(), 1);
    t.insert(
        "const has.v1_0.host.waker_free".into(),
        old_host.has_wakers() as i128,
    );
    t.insert(
        "const has.v1_0.init.n_args".into(),
        init(WS_INIT_SIZE_V1_0).has_args() as i128,
    );
    t.insert(
        "const has.v1_1.host.waker_free".into(),
        new_host.has_wakers() as i128,
    );
    t.insert(
        "const has.v1_1.host.websocket_close".into(),
        host(WS_HOST_SIZE_V1_1).has_upgrades() as i128,
    );
    t.insert(
        "const has.v1_1.host.waker_free_at_1_1_size".into(),
        host(WS_HOST_SIZE_V1_1).has_wakers() as i128,
    );
    t.insert(
        "const has.v1_2.host.websocket_close".into(),
        new_host.has_upgrades() as i128,
    );
    t.insert(
        "const has.v1_2.host.set_trailers".into(),
        host(WS_HOST_SIZE_V1_2).has_trailers() as i128,
    );
    t.insert(
        "const has.v1_2.host.send_file".into(),
        host(WS_HOST_SIZE_V1_2).has_send_file() as i128,
    );
    t.insert(
        "const has.v1_3.host.set_trailers".into(),
        new_host.has_trailers() as i128,
    );
    t.insert(
        "const has.v1_3.host.waker_wake_here".into(),
        new_host.has_wake_here() as i128,
    );
    t.insert(
        "const has.v1_3.host.waker_wake_here_at_trailers_size".into(),
        host(core::mem::offset_of!(WsHost, waker_wake_here) as u32).has_wake_here() as i128,
    );
    t.insert(
        "const has.v1_3.host.request_parts".into(),
        new_host.has_request_parts() as i128,
    );
    t.insert(
        "const has.v1_3_wake_here_only.host.request_parts".into(),
        host(core::mem::offset_of!(WsHost, request_parts) as u32).has_request_parts() as i128,
    );
    let new_init = init(core::mem::size_of::<WsInit>() as u32);
    t.insert(
        "const has.v1_1.init.n_args".into(),
        new_init.has_args() as i128,
    );
    // What WS_APP_HEADER(WS_APP_SINGLE_THREADED) expands to.
    t.insert("const header.magic".into(), WS_APP_MAGIC as i128);
    t.insert("const header.abi_major".into(), WS_ABI_MAJOR as i128);
    t.insert("const header.abi_minor".into(), WS_ABI_MINOR as i128);
    t.insert("const header.size".into(), WS_APP_SIZE_V1_0 as i128);
    t.insert("const header.flags".into(), WS_APP_SINGLE_THREADED as i128);
    t
}

fn c_table(out_dir: &Path) -> BTreeMap<String, i128> {
    let exe = out_dir.join("layout");
    run(c_flags(&mut Command::new(cc()))
        .arg("-o")
        .arg(&exe)
        .arg(manifest_dir().join("tests/layout.c")));
    let stdout = run(&mut Command::new(&exe));
    let mut t = BTreeMap::new();
    for line in stdout.lines() {
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: i128 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(
            t.insert(key.to_owned(), value).is_none(),
            "duplicate line {line:?}"
        );
    }
    t
}

#[test]
fn c_header_and_rust_mirror_have_the_same_layout_and_constants() {
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("app-abi-layout");
    std::fs::create_dir_all(&out_dir).unwrap();
    let c = c_table(&out_dir);
    let rust = rust_table();
    let mut problems = Vec::new();
    for (key, r) in &rust {
        match c.get(key) {
            None => problems.push(format!("{key}: Rust {r}, missing from layout.c")),
            Some(c) if c != r => problems.push(format!("{key}: C {c}, Rust {r}")),
            Some(_) => {}
        }
    }
    for (key, c) in &c {
        if !rust.contains_key(key) {
            problems.push(format!("{key}: C {c}, missing from the Rust table"));
        }
    }
    assert!(
        problems.is_empty(),
        "C/Rust ABI mismatch:\n{}",
        problems.join("\n")
    );
    // Sanity: the table is not trivially empty (10 structs, 36 constants).
    assert_eq!(c.keys().filter(|k| k.starts_with("size ")).count(), 10);
    assert!(c.len() > 100, "only {} facts compared", c.len());
}

#[test]
fn c_static_asserts_pin_the_lp64_layout() {
    run(c_flags(&mut Command::new(cc()))
        .arg("-fsyntax-only")
        .arg(manifest_dir().join("tests/layout_assert.c")));
}

#[test]
fn header_compiles_as_c99_and_as_cxx() {
    let header = manifest_dir().join("include/webserver_app.h");
    // C99 is the oldest dialect the header promises (`static inline`, `for (size_t i ...)`).
    run(Command::new(cc())
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-fsyntax-only",
            "-x",
            "c",
        ])
        .arg(&header));
    // The header has an `extern "C"` block: C++ apps include it too.
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".to_owned());
    run(Command::new(cxx)
        .args([
            "-std=c++11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsyntax-only",
            "-x",
            "c++",
        ])
        .arg(&header));
}
