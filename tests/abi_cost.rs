//! The ABI's own cost, measured in process by `webserver __bench-abi`: the server side of the
//! hello path (environ build, call, body iteration, response encoding) allocates nothing once its
//! buffers have grown (issue 5: "no per-request heap allocation on the hello path").

use std::process::Command;

#[test]
fn the_hello_path_makes_no_server_side_heap_allocation() {
    let out = Command::new(env!("CARGO_BIN_EXE_webserver"))
        .args(["__bench-abi", "hello:app", "20000"])
        .output()
        .expect("run webserver __bench-abi");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("environ+call+encode "))
        .unwrap_or_else(|| panic!("no result line in {stdout}"));
    let allocations: f64 = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("allocs_per_request="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no allocation count in {line}"));
    assert_eq!(allocations, 0.0, "{stdout}");
    assert!(stdout.contains("(status 200)"), "{stdout}");
}
