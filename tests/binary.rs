//! The binary's contract: exactly one `webserver: error: ` line per failure, whichever process
//! found it; and what the production binary is not: it has no ABI benchmark subcommand and no
//! counting global allocator (both live in benches/abi.rs and tests/abi_cost.rs, on top of the
//! library).

mod common;

use std::process::Command;

use webserver::exit;

#[test]
fn bench_abi_is_not_a_subcommand() {
    let out = Command::new(common::webserver_exe())
        .args(["__bench-abi", "hello:app", "1"])
        .current_dir(common::debug_dir())
        .output()
        .expect("run webserver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(i32::from(exit::USAGE)),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stdout.contains("ns_per_request"), "{stdout}");
    // `webserver LIB:SYMBOL [APP_ARGS]...`: the parser takes the word for an app and refuses it.
    assert!(
        stderr.contains("'__bench-abi' is not LIB:SYMBOL"),
        "{stderr}"
    );
}

/// `webserver::install_counting_allocator!` names its allocator `CountingAllocator`; a binary that
/// installed it would carry that name in its symbols. The library only defines the macro, so
/// the binary must not.
#[test]
fn the_binary_has_no_counting_allocator() {
    let exe = common::webserver_exe();
    let bytes = std::fs::read(&exe).expect("read the webserver binary");
    let needle = b"CountingAllocator";
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "{} contains {:?}: the production binary installs a counting allocator",
        exe.display(),
        String::from_utf8_lossy(needle)
    );
}

/// `check` runs the app in a `__probe` child whose own main prints its error: the parent must
/// not add a second line.
#[test]
fn check_of_an_app_answering_500_prints_one_error_line() {
    let mut spec = common::sample_app("panicky").into_os_string();
    spec.push(":app");
    let out = Command::new(common::webserver_exe())
        .arg("check")
        .arg(&spec)
        .env("RUST_LOG", "off")
        .output()
        .expect("run webserver check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ctx = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(out.status.code(), Some(i32::from(exit::FAILURE)), "{ctx}");
    assert!(stdout.contains("probe:   GET / -> 500"), "{ctx}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{ctx}");
    assert!(lines[0].starts_with("webserver: error: "), "{ctx}");
    assert!(lines[0].contains("answered GET / with 500"), "{ctx}");
}
