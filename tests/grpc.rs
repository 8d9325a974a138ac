//! gRPC through the tower adapter (issue 22 item 3): `sample-apps/grpc-app`, a tonic greeter,
//! served unchanged by webserver over h2c and called by a tonic client (`grpc-client`, built from
//! the same crate) — unary, server-streaming, an error status, many calls in flight — with the
//! same answers as the greeter on tonic's own server (`grpc-serve`).
//!
//! Over TLS too: the same client with tonic's rustls (ALPN `h2`) on a `tls` listener.
//!
//! Not here: grpcurl (not packaged by Debian).

mod common;
mod http2_support;

use std::net::SocketAddr;
use std::process::Command;

use common::*;

fn greeter_builder() -> ServerBuilder {
    sample_server("grpc_app").args(["--http2", "on"])
}

fn greeter_on_webserver() -> Server {
    greeter_builder().start()
}

/// `grpc-client http://ADDR ARGS...`: its stdout, after it exited 0.
fn client(addr: SocketAddr, args: &[&str]) -> String {
    run_client(&format!("http://{addr}"), args)
}

/// `grpc-client URL ARGS...`: its stdout, after it exited 0.
fn run_client(url: &str, args: &[&str]) -> String {
    let exe = debug_dir().join("grpc-client");
    assert!(
        exe.is_file(),
        "{} is missing: run `cargo build --workspace` first",
        exe.display()
    );
    let output = Command::new(&exe)
        .arg(url)
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

#[test]
fn a_tonic_client_calls_over_tls_with_alpn_h2() {
    let dir = fresh_dir("grpc-tls");
    let (certfile, keyfile) = http2_support::self_signed(&dir);
    // --certfile makes the listener a TLS one; --http2 on offers h2 (then http/1.1) by ALPN.
    let server = greeter_builder()
        .args(["--certfile".as_ref(), certfile.as_os_str()])
        .args(["--keyfile".as_ref(), keyfile.as_os_str()])
        .start();
    let url = format!("https://127.0.0.1:{}", server.port());
    let ca = certfile.to_str().unwrap();
    assert_eq!(
        run_client(&url, &["--ca", ca, "unary", "tls"]),
        "Hello, tls!\n"
    );
    assert_eq!(
        run_client(&url, &["--ca", ca, "stream", "tls", "3"]),
        "Hello #0, tls!\nHello #1, tls!\nHello #2, tls!\n"
    );
    assert_eq!(
        run_client(&url, &["--ca", ca, "unary", "fail"]),
        "status 3: the name \"fail\" is refused\n"
    );
    assert!(server
        .wait_for_log(std::time::Duration::from_secs(2), |l| l
            .contains("\"POST /greeter.Greeter/SayHelloStream HTTP/2\" 200"))
        .is_some());
}
