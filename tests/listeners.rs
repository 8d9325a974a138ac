//! Listeners end to end (issue 12): every `-b` form an operator uses — several at once, IPv6,
//! `:PORT` and a bare port, a host name, unix sockets (stale, live, removed on exit, their
//! mode), an inherited `fd://N` — served by the real binary and reached by real clients (our
//! own, `curl --unix-socket`), and every listener still there after a hot swap.
//!
//! The `peer` fixture answers with the connection's environ variables (`REMOTE_ADDR`, ...), so
//! the tests see what an app sees.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::swap::*;
use common::*;

/// `webserver -b ... peer:app`, without the harness's default `--bind`.
fn peer_server(binds: &[&str]) -> ServerBuilder {
    let mut target = fixture("peer").into_os_string();
    target.push(":app");
    let mut builder = server(target).no_default_bind();
    for bind in binds {
        builder = builder.args(["--bind", bind]);
    }
    builder
}

/// The `NAME=VALUE` lines of the peer fixture's answer (`NAME absent` lines are left out).
fn vars(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// `GET /` over TCP to `addr`; the peer fixture's variables.
fn get_tcp(addr: SocketAddr) -> HashMap<String, String> {
    let mut conn = Conn::connect(addr);
    conn.send("GET / HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n");
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "{addr}: {resp:?}");
    vars(&resp.text())
}

/// `GET /` over the unix socket at `path` with `Host: HOST`; the response's body.
fn get_unix(path: &Path, host: &str) -> String {
    get_unix_target(path, "/", host)
}

/// `GET TARGET` over the unix socket at `path` with `Host: HOST`; the response's body.
fn get_unix_target(path: &Path, target: &str, host: &str) -> String {
    let mut stream =
        UnixStream::connect(path).unwrap_or_else(|e| panic!("connect to {}: {e}", path.display()));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {response:?}"));
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    body.to_owned()
}

/// The listeners the server named on its first line.
fn listening_on(server: &Server) -> Vec<String> {
    let stdout = server.stdout();
    serving_addresses(stdout.lines().next().unwrap_or_default())
}

/// A TCP port free on every interface (IPv4 and IPv6) a moment ago.
fn free_port() -> u16 {
    let v6 = TcpListener::bind("[::]:0").unwrap();
    v6.local_addr().unwrap().port()
}

fn stop(mut server: Server) {
    server.signal(libc::SIGTERM);
    assert!(
        server.wait_exit(Duration::from_secs(15)).is_some(),
        "the server did not stop on SIGTERM"
    );
}

#[test]
fn two_binds_at_once_ipv4_and_ipv6_each_serve_with_their_peer_address() {
    let server = peer_server(&["127.0.0.1:0", "[::1]:0"]).start();
    let addrs = listening_on(&server);
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    let v4: SocketAddr = addrs[0].parse().unwrap();
    let v6: SocketAddr = addrs[1].parse().unwrap();
    assert!(v4.is_ipv4() && v6.is_ipv6(), "{addrs:?}");
    assert_ne!(v4.port(), 0);

    let seen = get_tcp(v4);
    assert_eq!(seen["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(seen["SERVER_PORT"], v4.port().to_string());
    let seen = get_tcp(v6);
    assert_eq!(seen["REMOTE_ADDR"], "::1");
    assert!(seen["REMOTE_PORT"].parse::<u16>().is_ok(), "{seen:?}");
    assert_eq!(seen["SERVER_PORT"], v6.port().to_string());
}

#[test]
fn an_ipv6_listener_is_v6_only_and_leaves_ipv4_to_another_server() {
    let port = free_port();
    // [::]:PORT would take 0.0.0.0:PORT too if it were dual-stack; v6-only leaves it free.
    let server = peer_server(&[&format!("[::]:{port}")]).start();
    let v4 = TcpListener::bind(("0.0.0.0", port));
    assert!(
        v4.is_ok(),
        "[::]:{port} also took the IPv4 port: {:?}",
        v4.err()
    );
    assert_eq!(
        get_tcp(format!("[::1]:{port}").parse().unwrap())["REMOTE_ADDR"],
        "::1"
    );
    drop(server);
}

#[test]
fn colon_port_and_bare_port_listen_on_every_interface_ipv4_and_ipv6() {
    for form in [":{port}", "{port}"] {
        let port = free_port();
        let bind = form.replace("{port}", &port.to_string());
        let server = peer_server(&[&bind]).start();
        assert_eq!(
            listening_on(&server),
            [format!("0.0.0.0:{port}"), format!("[::]:{port}")],
            "-b {bind}"
        );
        assert_eq!(
            get_tcp(format!("127.0.0.1:{port}").parse().unwrap())["REMOTE_ADDR"],
            "127.0.0.1"
        );
        let seen = get_tcp(format!("[::1]:{port}").parse().unwrap());
        assert_eq!(seen["REMOTE_ADDR"], "::1", "-b {bind}");
        // Bound to every address, each connection's own local address is the server's.
        assert_eq!(seen["SERVER_PORT"], port.to_string());
    }
}

#[test]
fn a_host_name_listens_on_every_address_it_resolves_to() {
    let server = peer_server(&["localhost:0"]).start();
    let addrs = listening_on(&server);
    let mut resolved: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs("localhost:1")
        .unwrap()
        .collect();
    resolved.dedup();
    assert_eq!(addrs.len(), resolved.len(), "{addrs:?} vs {resolved:?}");
    let port = addrs[0].parse::<SocketAddr>().unwrap().port();
    for addr in &addrs {
        let addr: SocketAddr = addr.parse().unwrap();
        assert_eq!(addr.port(), port, "one -b, one port: {addrs:?}");
        assert_eq!(get_tcp(addr)["REMOTE_ADDR"], addr.ip().to_string());
    }
}

#[test]
fn a_unix_socket_serves_curl_and_a_rust_client_with_an_empty_remote_addr() {
    let dir = fresh_dir("unix-serve");
    let path = dir.join("app.sock");
    let bind = format!("unix:{}", path.display());
    let server = peer_server(&[&bind, "127.0.0.1:0"]).start();
    assert_eq!(listening_on(&server)[0], bind);

    let seen = vars(&get_unix(&path, "app.example:8080"));
    assert_eq!(seen["REMOTE_ADDR"], "");
    assert!(!seen.contains_key("REMOTE_PORT"), "{seen:?}");
    assert_eq!(seen["SERVER_NAME"], "app.example");
    assert_eq!(seen["SERVER_PORT"], "8080");

    let curl = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--unix-socket"])
        .arg(&path)
        .arg("http://localhost/")
        .output()
        .expect("run curl");
    assert!(curl.status.success(), "{curl:?}");
    let body = String::from_utf8_lossy(&curl.stdout);
    let seen = vars(&body);
    assert_eq!(seen["REMOTE_ADDR"], "", "{body}");
    assert_eq!(seen["SERVER_NAME"], "localhost");
    assert_eq!(seen["SERVER_PORT"], "80", "no port in Host: HTTP's");

    // The TCP listener of the same server still has addresses.
    assert_eq!(get_tcp(server.addr())["REMOTE_ADDR"], "127.0.0.1");
}

#[test]
fn a_stale_socket_file_is_replaced_and_removed_on_exit() {
    let dir = fresh_dir("unix-stale");
    let path = dir.join("app.sock");
    // A server that died without cleaning up: the file is there, nobody accepts on it.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = peer_server(&[&format!("unix:{}", path.display())]).start();
    assert_eq!(vars(&get_unix(&path, "x"))["REMOTE_ADDR"], "");
    assert!(
        server.stderr().contains("replacing a stale socket file"),
        "{}",
        server.stderr()
    );
    stop(server);
    assert!(!path.exists(), "the master removes its socket file on exit");
}

#[test]
fn a_live_socket_is_refused_with_a_clear_error_and_left_alone() {
    let dir = fresh_dir("unix-live");
    let path = dir.join("app.sock");
    let other = UnixListener::bind(&path).unwrap();
    let exited = peer_server(&[&format!("unix:{}", path.display())]).run_to_exit();
    assert!(!exited.status.success());
    assert!(
        exited
            .stderr
            .contains("another server is accepting on this socket"),
        "{}",
        exited.stderr
    );
    // Still the other server's: a client reaches it.
    let _client = UnixStream::connect(&path).expect("the other server's socket survived");
    other.accept().unwrap();
}

#[test]
fn a_path_that_is_not_a_socket_is_refused() {
    let dir = fresh_dir("unix-file");
    let path = dir.join("app.sock");
    std::fs::write(&path, b"data").unwrap();
    let exited = peer_server(&[&format!("unix:{}", path.display())]).run_to_exit();
    assert!(!exited.status.success());
    assert!(
        exited.stderr.contains("is not a socket"),
        "{}",
        exited.stderr
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
}

#[test]
fn socket_mode_and_umask_are_applied_to_the_socket_file() {
    for (mode, want) in [("600", 0o600), ("0666", 0o666)] {
        let dir = fresh_dir("unix-mode");
        let path = dir.join("app.sock");
        let server = peer_server(&[&format!("unix:{}", path.display())])
            .args(["--socket-mode", mode])
            .start();
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(
            meta.permissions().mode() & 0o777,
            want,
            "--socket-mode {mode}"
        );
        get_unix(&path, "x");
        stop(server);
    }
    // --umask: the process's mask, which the socket file gets too (0777 & !007).
    let dir = fresh_dir("unix-umask");
    let path = dir.join("app.sock");
    let server = peer_server(&[&format!("unix:{}", path.display())])
        .args(["--umask", "007"])
        .start();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o770, "--umask 007");
    get_unix(&path, "x");
    stop(server);

    let exited = peer_server(&["127.0.0.1:0"])
        .args(["--socket-mode", "999"])
        .run_to_exit();
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    assert!(exited.stderr.contains("octal"), "{}", exited.stderr);
}

/// A descriptor number the server inherits in these tests (above stdio and below what the
/// master uses for itself).
const INHERITED_FD: i32 = 7;

#[test]
fn an_inherited_listening_socket_is_served_with_fd_n() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = peer_server(&[&format!("fd://{INHERITED_FD}")])
        .inherit_fd(listener.as_raw_fd(), INHERITED_FD)
        .start();
    // The test's copy goes away: the server's keeps the socket listening.
    drop(listener);
    assert_eq!(listening_on(&server), [format!("fd://{INHERITED_FD}")]);
    assert_eq!(get_tcp(addr)["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(get_tcp(addr)["SERVER_PORT"], addr.port().to_string());
}

/// The socket may already have the number the server is told (`fd://N` where the test's own
/// descriptor is N, close-on-exec as Rust opens every descriptor): it must still be inherited.
/// A CI run failed once when the listener above happened to get number 7.
#[test]
fn an_inherited_socket_that_already_has_its_number_is_served() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // A copy at a number of its own, at or above 60 (so no other test's descriptor is touched),
    // close-on-exec like the original.
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a descriptor this test owns returns a new one or -1.
    let number = unsafe { libc::fcntl(listener.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 60) };
    assert!(
        number >= 60,
        "F_DUPFD_CLOEXEC: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `number` was just made by fcntl and nothing else owns it.
    let copy = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(number) };
    let server = peer_server(&[&format!("fd://{number}")])
        .inherit_fd(copy.as_raw_fd(), number)
        .start();
    drop(copy);
    drop(listener);
    assert_eq!(get_tcp(addr)["SERVER_PORT"], addr.port().to_string());
    drop(server);
}

#[test]
fn an_inherited_descriptor_that_is_not_a_listening_socket_is_refused() {
    let (connected, _other) = UnixStream::pair().unwrap();
    let exited = peer_server(&[&format!("fd://{INHERITED_FD}")])
        .inherit_fd(connected.as_raw_fd(), INHERITED_FD)
        .run_to_exit();
    assert!(!exited.status.success());
    assert!(
        exited.stderr.contains("does not listen"),
        "{}",
        exited.stderr
    );
    let exited = peer_server(&["fd://63"]).run_to_exit();
    assert!(!exited.status.success());
    assert!(
        exited.stderr.contains("not an inherited open descriptor"),
        "{}",
        exited.stderr
    );
}

#[test]
fn bad_bind_values_are_usage_errors_that_say_what_is_expected() {
    for (bind, says) in [
        ("127.0.0.1", "no port"),
        ("localhost:http", "not a port number"),
        ("127.0.0.1:80,tsl", "unknown listener option 'tsl'"),
        ("::1:80", "brackets"),
    ] {
        let exited = peer_server(&[bind]).run_to_exit();
        assert_eq!(
            exited.status.code(),
            Some(2),
            "-b {bind}: {}",
            exited.stderr
        );
        assert!(exited.stderr.contains(says), "-b {bind}: {}", exited.stderr);
    }
}

#[test]
fn every_listener_survives_a_hot_swap() {
    let dir = fresh_dir("listeners-swap");
    let path = dir.join("app.sock");
    let bind = format!("unix:{}", path.display());
    let (server, live, pid_file) = live_server(
        &dir,
        &sample_app("pyramidish"),
        &["-w", "2", "--bind", &bind],
    );
    let inode = std::fs::metadata(&path).unwrap().ino();
    let tcp = server.addr();
    let hello = |who: &str| {
        let body = get_unix_target(&path, "/hello", "x");
        assert!(body.contains(who), "{body}");
        let mut conn = Conn::connect(tcp);
        conn.send("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let resp = conn.read_response();
        assert!(resp.text().contains(who), "{}", resp.text());
    };
    hello("Pyramidish");
    // A client that connected before the swap is still answered after it.
    let mut waiting = UnixStream::connect(&path).unwrap();

    install(&sample_app("flaskish"), &live);
    let (state, _, rest) = hup(&pid_file);
    assert_eq!(state, "ready", "{rest}");
    hello("Flaskish");
    assert_eq!(
        std::fs::metadata(&path).unwrap().ino(),
        inode,
        "the unix socket file is the one the master made at start"
    );
    waiting.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    waiting
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    waiting.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    stop(server);
    assert!(!path.exists());
}

#[test]
fn backlog_and_reuse_port_are_accepted_and_reuse_port_lets_two_servers_share_a_port() {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let first = peer_server(&[&bind])
        .args(["--reuse-port", "--backlog", "64"])
        .start();
    let second = peer_server(&[&bind]).args(["--reuse-port"]).start();
    // The kernel spreads connections over both.
    for _ in 0..4 {
        assert_eq!(get_tcp(first.addr())["REMOTE_ADDR"], "127.0.0.1");
    }
    // Once the first is gone (its queue with it), the second serves the port alone.
    stop(first);
    assert_eq!(get_tcp(second.addr())["REMOTE_ADDR"], "127.0.0.1");
    // Without --reuse-port the port is taken.
    let exited = peer_server(&[&bind]).run_to_exit();
    assert!(
        exited.stderr.contains("Address already in use"),
        "{}",
        exited.stderr
    );
    drop(second);
}
