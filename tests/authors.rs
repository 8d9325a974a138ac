//! What an app author meets: `webserver new` (both languages, generated outside this repository,
//! built, checked and served), `webserver header`, completions and the man page, the Rust guide's
//! example, and the load errors a first app runs into — each must say what is wrong and what to
//! do about it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use tokio_tungstenite::tungstenite::Message;

/// A scratch directory outside the repository (so nothing in the generated apps can lean on the
/// workspace), removed when dropped.
struct OutsideDir(PathBuf);

impl OutsideDir {
    fn new(tag: &str) -> OutsideDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "webserver-authors-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(
            !dir.starts_with(workspace_dir()),
            "the temp dir {} is inside the repository",
            dir.display()
        );
        OutsideDir(dir)
    }
}

impl Drop for OutsideDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `webserver ARGS` in `cwd`, to completion.
fn webserver(cwd: &Path, args: &[&str]) -> Output {
    Command::new(webserver_exe())
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run webserver")
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn serve_and_greet(lib: &Path, expected: &str) {
    let mut target = lib.as_os_str().to_owned();
    target.push(":app");
    let server = server(target).start();
    let resp = server.get("/greet?name=J%C3%BCrgen");
    assert_eq!(resp.status, 200, "{}", server.stderr());
    assert_eq!(resp.text(), expected);
    // The WebSocket route: an echo, and 426 for a plain request.
    assert_eq!(server.get("/ws").status, 426);
    let mut ws = ws_client::connect(server.addr(), "/ws");
    for text in ["hello", "WebSocket ✓"] {
        ws.send(Message::text(text)).unwrap();
        assert_eq!(
            ws_client::next_event(&mut ws),
            format!("text {} {}", text.len(), ws_client::digest(text.as_bytes()))
        );
    }
    ws.send(Message::binary(vec![0u8, 1, 2])).unwrap();
    assert!(ws_client::next_event(&mut ws).starts_with("binary 3 "));
    ws.close(None).unwrap();
    assert!(ws_client::next_event(&mut ws).starts_with("close "));
}

#[test]
fn new_rust_app_builds_offline_outside_the_repository_and_serves() {
    let tmp = OutsideDir::new("rust");
    assert_ok("webserver new", &webserver(&tmp.0, &["new", "my-app"]));
    let app = tmp.0.join("my-app");
    // An empty CARGO_HOME and --offline: the app needs nothing but its own directory.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let build = Command::new(cargo)
        .current_dir(&app)
        .args(["build", "--offline"])
        .env("CARGO_HOME", tmp.0.join("cargo-home"))
        .env("CARGO_TARGET_DIR", tmp.0.join("target"))
        .output()
        .expect("run cargo");
    assert_ok("cargo build of the generated app", &build);
    let lib = tmp.0.join("target/debug/libmy_app.so");
    let check = webserver(&app, &["check", &format!("{}:app", lib.display())]);
    assert_ok("webserver check", &check);
    assert!(String::from_utf8_lossy(&check.stdout).contains("GET / -> 200"));
    serve_and_greet(&lib, "Hello, Jürgen! path=/greet\n");
}

#[test]
fn new_c_app_builds_with_make_and_serves() {
    let tmp = OutsideDir::new("c");
    let new = webserver(&tmp.0, &["new", "cee", "--lang", "c"]);
    assert_ok("webserver new --lang c", &new);
    assert!(String::from_utf8_lossy(&new.stdout).contains("make"));
    let app = tmp.0.join("cee");
    let make = Command::new("make")
        .current_dir(&app)
        .output()
        .expect("run make (the C-app test needs make and cc)");
    assert_ok("make", &make);
    let check = webserver(&app, &["check", "./libcee.so:app"]);
    assert_ok("webserver check", &check);
    serve_and_greet(&app.join("libcee.so"), "Hello from cee! path=/greet\n");
}

/// `make` in `dir`, asserting it built.
fn make(dir: &Path) {
    let make = Command::new("make")
        .current_dir(dir)
        .output()
        .expect("run make (the C-app test needs make and cc)");
    assert_ok("make", &make);
}

/// `GET path` sent on a new connection (the response is read later).
fn send_get(server: &Server, path: &str) -> Conn {
    let mut conn = server.connect();
    conn.send(format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    ));
    conn
}

/// The generated C app answers `/later` from its own worker threads (ABI 1.1: `WS_PENDING`, a
/// waker): on one serving thread, requests parked on slow work hold no thread, many of them at
/// once are each answered, and requests whose clients left are cancelled and freed without the
/// worker threads outliving the app (TERM exits cleanly while they were busy).
#[test]
fn new_c_app_defers_to_its_worker_threads_without_holding_a_serving_thread() {
    let tmp = OutsideDir::new("c-later");
    assert_ok(
        "webserver new --lang c",
        &webserver(&tmp.0, &["new", "later", "--lang", "c"]),
    );
    let app = tmp.0.join("later");
    make(&app);
    let mut target = app.join("liblater.so").into_os_string();
    target.push(":app");
    let mut server = server(target).args(["--threads", "1"]).start();

    // Slow work parked on every worker thread of the app: the one serving thread stays free.
    let slow: Vec<Conn> = (0..4)
        .map(|_| send_get(&server, "/later?ms=3000"))
        .collect();
    let started = Instant::now();
    let now = server.get("/now");
    assert_eq!(now.status, 200, "{}", server.stderr());
    assert_eq!(now.text(), "Hello from later! path=/now\n");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the immediate route waited {:?} behind parked requests",
        started.elapsed()
    );
    for mut conn in slow {
        let resp = conn.read_response();
        assert_eq!(resp.status, 200, "{}", server.stderr());
        assert_eq!(resp.text(), "Hello later from later, after 3000 ms\n");
    }

    // Many at once, each answered with its own result.
    let many: Vec<(u64, Conn)> = (0..24u64)
        .map(|i| (i, send_get(&server, &format!("/later?ms={}", 10 + i))))
        .collect();
    for (i, mut conn) in many {
        let resp = conn.read_response();
        assert_eq!(resp.status, 200, "{}", server.stderr());
        assert_eq!(
            resp.text(),
            format!("Hello later from later, after {} ms\n", 10 + i)
        );
    }

    // Clients that leave while their work runs: `close` cancels it, the workers let go of it.
    let leaving: Vec<Conn> = (0..8)
        .map(|_| send_get(&server, "/later?ms=5000"))
        .collect();
    thread::sleep(Duration::from_millis(300)); // parked, then the clients leave
    drop(leaving);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(server.get("/still").status, 200, "{}", server.stderr());
    let stopping = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no exit after TERM: {}", server.stderr()));
    assert!(status.success(), "{status:?}: {}", server.stderr());
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "cancelled work held the stop for {:?}",
        stopping.elapsed()
    );
    assert!(!server.stderr().contains("ERROR"), "{}", server.stderr());
}

/// `webserver new PATH`, as `cargo new PATH`: the last component names the app, the directories
/// before it are created; both languages, relative and absolute.
#[test]
fn new_takes_a_path_whose_last_component_names_the_app() {
    let tmp = OutsideDir::new("path");
    let rust = webserver(&tmp.0, &["new", "apps/web/my-svc"]);
    assert_ok("webserver new apps/web/my-svc", &rust);
    let manifest = std::fs::read_to_string(tmp.0.join("apps/web/my-svc/Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"my-svc\""), "{manifest}");
    assert!(
        String::from_utf8_lossy(&rust.stdout).contains("apps/web/my-svc"),
        "{rust:?}"
    );

    let c_dir = tmp.0.join("c/deep/cee2");
    let c = webserver(
        &workspace_dir(),
        &["new", &c_dir.to_string_lossy(), "--lang", "c"],
    );
    assert_ok("webserver new /abs/path --lang c", &c);
    assert!(c_dir.join("cee2.c").is_file());
    make(&c_dir);
    let server = server(format!("{}:app", c_dir.join("libcee2.so").display())).start();
    assert_eq!(server.get("/x").text(), "Hello from cee2! path=/x\n");

    let trailing = webserver(&tmp.0, &["new", "slash/", "--lang", "c"]);
    assert_ok("webserver new slash/", &trailing);
    assert!(tmp.0.join("slash/slash.c").is_file());
}

#[test]
fn new_refuses_a_bad_name_and_an_existing_directory() {
    let tmp = OutsideDir::new("refuse");
    let bad = webserver(&tmp.0, &["new", "apps/1escape"]);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a usable app name"));
    std::fs::create_dir_all(tmp.0.join("taken")).unwrap();
    std::fs::write(tmp.0.join("taken/keep.txt"), "mine").unwrap();
    let taken = webserver(&tmp.0, &["new", "taken"]);
    assert_eq!(taken.status.code(), Some(1), "{taken:?}");
    assert!(String::from_utf8_lossy(&taken.stderr).contains("already exists"));
    assert_eq!(
        std::fs::read_to_string(tmp.0.join("taken/keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn header_prints_the_header_apps_compile_against() {
    let out = webserver(&workspace_dir(), &["header"]);
    assert_ok("webserver header", &out);
    let file = std::fs::read(workspace_dir().join("app-abi/include/webserver_app.h")).unwrap();
    assert_eq!(out.stdout, file);
    let text = String::from_utf8_lossy(&file);
    assert!(text.contains("C99") && text.contains("extern \"C\""));
}

#[test]
fn completions_and_man_page_come_from_the_command_line_definition() {
    for (shell, marker) in [
        ("bash", "complete "),
        ("zsh", "#compdef webserver"),
        ("fish", "complete -c webserver"),
    ] {
        let out = webserver(&workspace_dir(), &["completions", shell]);
        assert_ok(shell, &out);
        let script = String::from_utf8_lossy(&out.stdout);
        for word in [
            marker,
            "bind",
            "graceful-timeout",
            "check",
            "new",
            "completions",
        ] {
            assert!(script.contains(word), "{shell} completions lack {word:?}");
        }
        assert!(!script.contains("__worker"), "hidden modes are not offered");
    }
    let man = webserver(&workspace_dir(), &["man"]);
    assert_ok("webserver man", &man);
    let page = String::from_utf8_lossy(&man.stdout);
    for word in [".TH webserver 1", "graceful\\-timeout", "completions"] {
        assert!(page.contains(word), "man page lacks {word:?}");
    }
}

/// The guide's Rust example (docs/src/guide/rust.md, its first Rust block) is the app `webserver
/// new` generates, so it builds wherever the checkout is (the generated app vendors app-abi).
#[test]
fn guide_rust_example_is_the_generated_app() {
    let page = std::fs::read_to_string(workspace_dir().join("docs/src/guide/rust.md")).unwrap();
    let example = page
        .split("```rust,ignore\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("the Rust guide has a ```rust,ignore block");
    let tmp = OutsideDir::new("guide");
    assert_ok("webserver new", &webserver(&tmp.0, &["new", "hello-app"]));
    let generated = std::fs::read_to_string(tmp.0.join("hello-app/src/lib.rs")).unwrap();
    assert_eq!(example, generated);
}

// ---------------------------------------------------------------------------------------------
// Load errors a first app runs into
// ---------------------------------------------------------------------------------------------

/// A descriptor's `call` that answers 204: enough for an app that loads.
const C_CALL: &str = r#"
#include "webserver_app.h"
static int32_t call(void *state, const ws_request *req, ws_body *body) {
    (void)state;
    (void)body;
    ws_bytes no_reason = {0, 0};
    return req->host->start_response(req->io, 204, no_reason, 0, 0, 0);
}
"#;

/// Compiles `source` with `compiler` (`cc` or `c++`, `$CC`/`$CXX` win) into
/// `target/c-apps/<tag>-…/lib<tag>.so` and returns `LIB:app` for it.
fn compile(compiler: &str, tag: &str, source: &str) -> std::ffi::OsString {
    let (env, ext) = if compiler == "c++" {
        ("CXX", "cpp")
    } else {
        ("CC", "c")
    };
    let compiler = std::env::var(env).unwrap_or_else(|_| compiler.to_owned());
    let dir = fresh_dir(tag);
    let src = dir.join(format!("{tag}.{ext}"));
    std::fs::write(&src, source).unwrap();
    let lib = dir.join(format!("lib{tag}.so"));
    let out = Command::new(&compiler)
        .args(["-shared", "-fPIC", "-I"])
        .arg(workspace_dir().join("app-abi/include"))
        .arg("-o")
        .arg(&lib)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert_ok(&format!("{compiler} {tag}"), &out);
    let mut target = lib.into_os_string();
    target.push(":app");
    target
}

#[test]
fn a_directory_named_as_the_library_is_called_a_directory() {
    let dir = fresh_dir("dir-lib").join("libmyapp.so");
    std::fs::create_dir_all(&dir).unwrap();
    let mut target = dir.into_os_string();
    target.push(":app");
    let exited = server(target.clone()).run_to_exit();
    assert_load_error(
        &exited,
        &["libmyapp.so is a directory", "name the .so file"],
    );
    let check = webserver(&workspace_dir(), &["check", &target.to_string_lossy()]);
    assert_eq!(check.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&check.stderr).contains("is a directory"));
}

#[test]
fn an_undefined_symbol_is_a_link_problem() {
    let source = format!(
        "{C_CALL}\nint helper_nobody_defines(void);\n\
         static int32_t init(const ws_init *i, void **s) {{ (void)i; *s = 0; return helper_nobody_defines(); }}\n\
         const ws_app app = {{WS_APP_HEADER(0), \"linky\", \"1\", init, call, 0}};\n"
    );
    let exited = server(compile("cc", "linky", &source)).run_to_exit();
    assert_load_error(
        &exited,
        &["undefined symbol: helper_nobody_defines", "a link problem"],
    );
    assert!(
        !exited.stderr.contains("built for this platform"),
        "{exited:?}"
    );
}

#[test]
fn a_function_named_as_the_app_is_called_a_function() {
    let exited = server(compile("cc", "fnapp", "int app(void) { return 42; }\n")).run_to_exit();
    assert_load_error(&exited, &["app is a function", "const ws_app app"]);
}

#[test]
fn data_that_is_not_a_descriptor_is_called_data() {
    let source = "const unsigned app[16] = {1, 2, 3};\n";
    let exited = server(compile("cc", "dataapp", source)).run_to_exit();
    assert_load_error(
        &exited,
        &["not a webserver app descriptor", "data of another kind"],
    );
    assert!(!exited.stderr.contains("is a function"), "{exited:?}");
    // One byte of data: refused from the symbol table, never read as a 16-byte header.
    let exited = server(compile("cc", "byteapp", "const char app = 1;\n")).run_to_exit();
    assert_load_error(
        &exited,
        &["too small or misaligned", "data of another kind"],
    );
}

#[test]
fn a_cpp_descriptor_without_extern_c_is_named_with_the_fix() {
    let descriptor =
        "const ws_app app = {WS_APP_HEADER(0), \"cpp\", \"1\", nullptr, call, nullptr};\n";
    let exited = server(compile(
        "c++",
        "cppnoextern",
        &format!("{C_CALL}{descriptor}"),
    ))
    .run_to_exit();
    assert_load_error(
        &exited,
        &[
            "symbol 'app' not found",
            "'_ZL3app'",
            "extern \"C\" const ws_app app",
        ],
    );
    // The fix the error names works.
    let fixed = format!("{C_CALL}extern \"C\" {descriptor}");
    let server = server(compile("c++", "cppextern", &fixed)).start();
    assert_eq!(server.get("/").status, 204);
}

#[test]
fn cargo_build_workspace_is_advised_only_for_the_sample_apps() {
    let cwd = fresh_dir("advice");
    let exited = server("myownapp:app").cwd(&cwd).run_to_exit();
    assert_load_error(
        &exited,
        &["cannot find library 'myownapp'", "give its path"],
    );
    assert!(!exited.stderr.contains("--workspace"), "{exited:?}");

    // A webserver with no sample apps beside it (an installed one) asked for one of them.
    let alone = cwd.join("webserver");
    std::fs::copy(webserver_exe(), &alone).unwrap();
    // Another test thread forking while the copy was open for writing holds a writable
    // descriptor of it until that child execs: exec fails with ETXTBSY meanwhile.
    let out = poll(
        Duration::from_secs(10),
        "exec of the copied binary",
        || match Command::new(&alone)
            .current_dir(&cwd)
            .args(["--bind", "127.0.0.1:0", "hello:app"])
            .output()
        {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => None,
            result => Some(result.unwrap()),
        },
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cargo build --workspace in the webserver checkout"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// Habits from other servers
// ---------------------------------------------------------------------------------------------

/// `webserver flaskapp:app` where flaskapp.py is (the article's and gunicorn's way): the answer
/// names the WSGI adapter, not a Rust build; the same for a dotted module and for `flaskapp.py`.
#[test]
fn a_python_module_named_as_the_library_points_to_the_wsgi_adapter() {
    let cwd = fresh_dir("python-target");
    std::fs::write(
        cwd.join("flaskapp.py"),
        "def app(environ, start_response): pass\n",
    )
    .unwrap();
    std::fs::create_dir_all(cwd.join("pkg")).unwrap();
    std::fs::write(cwd.join("pkg/__init__.py"), "").unwrap();
    std::fs::write(cwd.join("pkg/module.py"), "application = None\n").unwrap();
    for (target, advice) in [
        ("flaskapp:app", "webserver wsgi:app flaskapp:app"),
        ("flaskapp.py:app", "webserver wsgi:app flaskapp:app"),
        (
            "pkg.module:application",
            "webserver wsgi:app pkg.module:application",
        ),
    ] {
        let exited = server(target).cwd(&cwd).run_to_exit();
        assert_load_error(&exited, &["is a Python module", advice]);
        assert!(!exited.stderr.contains("cargo build"), "{exited:?}");
        let check = webserver(&cwd, &["check", target]);
        assert_eq!(check.status.code(), Some(1), "{check:?}");
        assert!(
            String::from_utf8_lossy(&check.stderr).contains(advice),
            "{check:?}"
        );
    }
    // gunicorn's `module` alone (module:application): a usage error, with the same advice.
    let alone = webserver(&cwd, &["flaskapp"]);
    let stderr = String::from_utf8_lossy(&alone.stderr);
    assert_eq!(alone.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("webserver wsgi:app flaskapp\n"), "{stderr}");
}

/// gunicorn's, uvicorn's and flask's listening flags: the error says which -b to write instead
/// of clap's tip to pass `--port` as a value.
#[test]
fn port_and_host_flags_point_to_bind() {
    let cwd = fresh_dir("port-habit");
    for (args, advice) in [
        (&["--port", "8000", "hello:app"][..], "-b 127.0.0.1:8000"),
        (&["--port=9000", "hello:app"][..], "-b 127.0.0.1:9000"),
        (
            &["--host", "0.0.0.0", "--port", "8000", "hello:app"][..],
            "-b 0.0.0.0:8000",
        ),
        (&["--host", "::1", "hello:app"][..], "-b [::1]:8888"),
        (
            &["--uds", "/tmp/app.sock", "hello:app"][..],
            "-b unix:/tmp/app.sock",
        ),
        (&["--fd", "3", "hello:app"][..], "-b fd://3"),
    ] {
        let out = webserver(&cwd, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(advice), "{args:?}: {stderr}");
        assert!(!stderr.contains("use '--"), "{args:?}: {stderr}");
    }
}
