//! gRPC through the tower adapter (issue 22 item 3): `sample-apps/grpc-app`, a tonic greeter,
//! served unchanged by webserver over h2c and called by a tonic client (`grpc-client`, built from
//! the same crate) — unary, server-streaming, an error status, many calls in flight — with the
//! same answers as the greeter on tonic's own server (`grpc-serve`).
//!
//! Not here: TLS (the client would need tonic's rustls feature: ALPN `h2` over TLS is covered
//! by tests/http2.rs for every app), and grpcurl (not packaged by Debian).

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::*;

fn greeter_on_webserver() -> Server {
    sample_server("grpc_app").args(["--http2", "on"]).start()
}

/// `grpc-client http://ADDR ARGS...`: its stdout, after it exited 0.
fn client(addr: SocketAddr, args: &[&str]) -> String {
    let exe = debug_dir().join("grpc-client");
    assert!(
        exe.is_file(),
        "{} is missing: run `cargo build --workspace` first",
        exe.display()
    );
    let output = Command::new(&exe)
        .arg(format!("http://{addr}"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "grpc-client {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn a_tonic_client_calls_unary_and_streaming_and_gets_error_statuses() {
    let server = greeter_on_webserver();
    let addr = server.addr();
    assert_eq!(client(addr, &["unary", "world"]), "Hello, world!\n");
    assert_eq!(
        client(addr, &["stream", "you", "3"]),
        "Hello #0, you!\nHello #1, you!\nHello #2, you!\n"
    );
    assert_eq!(client(addr, &["stream", "nobody", "0"]), "");
    // The service's error reaches the client as its grpc-status (3, INVALID_ARGUMENT) and
    // message: without trailers the client would see an error of the transport instead.
    assert_eq!(
        client(addr, &["unary", "fail"]),
        "status 3: the name \"fail\" is refused\n"
    );
    let many = client(addr, &["stream", "many", "500"]);
    assert_eq!(many.lines().count(), 500);
    assert_eq!(many.lines().last(), Some("Hello #499, many!"));
    assert!(server
        .wait_for_log(std::time::Duration::from_secs(2), |l| l
            .contains("\"POST /greeter.Greeter/SayHello HTTP/2\" 200"))
        .is_some());
}

#[test]
fn the_same_calls_answer_the_same_as_on_tonics_own_server() {
    let webserver = greeter_on_webserver();
    let tonic = AxumServe::start_bin("grpc-serve");
    for args in [
        &["unary", "same"][..],
        &["unary", "fail"],
        &["stream", "same", "4"],
    ] {
        assert_eq!(
            client(webserver.addr(), args),
            client(tonic.addr, args),
            "{args:?}"
        );
    }
}

#[test]
fn many_calls_in_flight_on_few_connections_all_succeed() {
    let server = greeter_on_webserver();
    let report = client(server.addr(), &["load", "1", "2", "8"]);
    let words: Vec<&str> = report.split_whitespace().collect();
    assert_eq!(words[0], "calls", "{report}");
    let calls: u64 = words[1].parse().unwrap();
    assert!(calls > 10, "{report}");
    assert_eq!(words[3], "0", "no call failed: {report}");
}
