//! What an app author meets: `webserver new` (both languages, generated outside this repository,
//! built, checked and served), `webserver header`, completions and the man page, the README's
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

/// The README's Rust example is the app `webserver new` generates, so it builds wherever the
/// checkout is (the generated app vendors app-abi).
#[test]
fn readme_rust_example_is_the_generated_app() {
    let readme = std::fs::read_to_string(workspace_dir().join("README.md")).unwrap();
    let section = readme
        .split("## Writing an app in Rust")
        .nth(1)
        .expect("README has a Rust section");
    let example = section
        .split("```rust\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("the Rust section has a ```rust block");
    let tmp = OutsideDir::new("readme");
    assert_ok("webserver new", &webserver(&tmp.0, &["new", "hello-app"]));
    let generated = std::fs::read_to_string(tmp.0.join("hello-app/src/lib.rs")).unwrap();
    assert_eq!(example, generated);
}
