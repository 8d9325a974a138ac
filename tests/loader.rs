//! The command line and the loader: every form of `LIB:SYMBOL`, and every way a load can fail —
//! each must exit 1 with one `webserver: error: ` line and no panic.

mod common;

use common::*;

#[test]
fn bare_name_is_found_beside_the_executable_from_any_cwd() {
    sample_app("hello");
    let cwd = fresh_dir("cwd-bare-name");
    let server = server("hello:app").cwd(&cwd).start();
    let resp = server.get("/");
    assert_eq!(resp.status, 200);
    assert!(resp.text().contains("Hello"), "{:?}", resp.text());
}

#[test]
fn library_file_name_is_looked_up_in_the_cwd() {
    sample_app("pyramidish");
    let server = server("libpyramidish.so:app").cwd(debug_dir()).start();
    let resp = server.get("/hello");
    assert_eq!(resp.status, 200);
    assert!(resp.text().contains("Pyramidish"), "{:?}", resp.text());
}

#[test]
fn relative_path_with_bind_and_threads() {
    let lib = sample_app("flaskish");
    let root = workspace_dir();
    // `target/debug/libflaskish.so` unless CARGO_TARGET_DIR points elsewhere.
    let (cwd, rel) = match relative_to(&lib, &root) {
        Some(rel) => (root, rel),
        None => (debug_dir(), "libflaskish.so".into()),
    };
    let mut target = rel.into_os_string();
    target.push(":app");
    let server = server(target)
        .no_default_bind()
        .args(["--bind", "127.0.0.1:0", "--threads", "8"])
        .cwd(cwd)
        .start();
    let resp = server.get("/hello");
    assert_eq!(resp.status, 200);
    assert!(resp.text().contains("Flaskish"), "{:?}", resp.text());
}

#[test]
fn target_is_split_at_the_last_colon() {
    // A directory with a ':' in its name: only the last ':' separates LIB from SYMBOL.
    let dir = fresh_dir("colon").join("a:b");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(c_hello(), dir.join("libc_hello.so")).unwrap();
    let mut target = dir.join("libc_hello.so").into_os_string();
    target.push(":app");
    let server = server(target).start();
    let resp = server.get("/colon");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "Hello from C! path=/colon\n");
}

#[test]
fn one_library_can_hold_several_apps() {
    let lib = fixture("multi");
    for (symbol, expected) in [("api", "this is api\n"), ("admin", "this is admin\n")] {
        let mut target = lib.clone().into_os_string();
        target.push(format!(":{symbol}"));
        let server = server(target).start();
        let resp = server.get("/");
        assert_eq!(resp.status, 200, "{symbol}");
        assert_eq!(resp.text(), expected, "{symbol}");
    }
}

#[test]
fn version_and_help_exit_zero() {
    for flag in ["--version", "--help"] {
        let out = std::process::Command::new(webserver_exe())
            .arg(flag)
            .output()
            .unwrap();
        assert!(out.status.success(), "{flag}: {out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.trim().is_empty(),
            "{flag} printed nothing on stdout"
        );
    }
    let out = std::process::Command::new(webserver_exe())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--bind",
        "--threads",
        "--keep-alive",
        "--header-timeout",
        "--max-body",
    ] {
        assert!(
            help.contains(option),
            "--help does not mention {option}:\n{help}"
        );
    }
}

#[test]
fn missing_library_lists_the_places_looked() {
    let cwd = fresh_dir("cwd-missing");
    let exited = server("nosuchapp:app").cwd(&cwd).run_to_exit();
    let beside_exe = debug_dir().join("libnosuchapp.so");
    assert_load_error(&exited, &["cannot find", "libnosuchapp.so"]);
    assert!(
        exited.stderr.contains(&*beside_exe.to_string_lossy()),
        "the error should list {} among the places looked: {}",
        beside_exe.display(),
        exited.stderr
    );
}

#[test]
fn missing_library_path() {
    let cwd = fresh_dir("cwd-missing-path");
    let exited = server("./sub/libnothere.so:app").cwd(&cwd).run_to_exit();
    assert_load_error(&exited, &["cannot find", "libnothere.so"]);
}

#[test]
fn garbage_file_cannot_be_loaded() {
    let dir = fresh_dir("garbage");
    let lib = dir.join("libgarbage.so");
    std::fs::write(&lib, pseudo_random_bytes(4096, 42)).unwrap();
    let mut target = lib.into_os_string();
    target.push(":app");
    let exited = server(target).run_to_exit();
    assert_load_error(&exited, &["cannot load", "libgarbage.so"]);
}

#[test]
fn missing_symbol_is_named() {
    sample_app("hello");
    let exited = server("hello:nope").run_to_exit();
    assert_load_error(&exited, &["symbol", "nope"]);
}

#[test]
fn bad_magic_is_not_a_webserver_app() {
    let mut target = fixture("bad_magic").into_os_string();
    target.push(":app");
    let exited = server(target).run_to_exit();
    assert_load_error(&exited, &["not a webserver app"]);
}

#[test]
fn wrong_abi_major_names_both_majors() {
    let mut target = fixture("abi_major2").into_os_string();
    target.push(":app");
    let exited = server(target).run_to_exit();
    assert_load_error(&exited, &["ABI", "built for ABI 2", "ABI 1"]);
}

#[test]
fn descriptor_smaller_than_abi_1_0_is_refused() {
    let mut target = fixture("too_small").into_os_string();
    target.push(":app");
    let exited = server(target).run_to_exit();
    // 40 = offsetof(ws_app, call), what the fixture claims; 56 = sizeof(ws_app) in ABI 1.0.
    assert_load_error(&exited, &["size", "40", "56"]);
}

#[test]
fn init_failure_reports_the_apps_message() {
    let mut target = fixture("init_fails").into_os_string();
    target.push(":app");
    let exited = server(target).run_to_exit();
    assert_load_error(&exited, &["init failed", "database unreachable"]);
}

#[test]
fn c_app_init_logs_through_the_host() {
    let mut target = c_hello().into_os_string();
    target.push(":app");
    let server = server(target).start();
    assert!(
        server
            .wait_for_log(std::time::Duration::from_secs(2), |l| l
                .contains("c-hello initialised"))
            .is_some(),
        "the message the C app logged from init (host->log) is not in the server log"
    );
}
