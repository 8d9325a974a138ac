//! What an app author meets: `webserver new` (both languages, generated outside this repository,
//! built, checked and served), `webserver header`, completions and the man page, the Rust guide's
//! example, and the load errors a first app runs into — each must say what is wrong and what to
//! do about it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

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

#[test]
fn new_refuses_a_bad_name_and_an_existing_directory() {
    let tmp = OutsideDir::new("refuse");
    let bad = webserver(&tmp.0, &["new", "../escape"]);
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
    let out = Command::new(&alone)
        .current_dir(&cwd)
        .args(["--bind", "127.0.0.1:0", "hello:app"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cargo build --workspace in the webserver checkout"),
        "{stderr}"
    );
}
