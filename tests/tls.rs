//! TLS end to end (`--certfile`/`--keyfile`): a CA and server certificates made at test time
//! (rcgen), real clients (curl with --cacert, a rustls client), the handshake inside the epoll
//! layer (a stalled handshake is dropped at --header-timeout while others are served, garbage
//! is refused), and certificates re-read on HUP (a broken one keeps the old one serving).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SerialNumber, PKCS_ED25519,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A test CA that signs server certificates for `localhost` and 127.0.0.1.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    dir: PathBuf,
}

/// A server certificate (with its chain) and key, written as PEM files.
struct ServerCert {
    certfile: PathBuf,
    keyfile: PathBuf,
    /// The leaf certificate, as the server must present it.
    der: Vec<u8>,
}

impl Ca {
    fn new(tag: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "webserver test CA");
        let cert = params.self_signed(&key).unwrap();
        let dir = fresh_dir(tag);
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        Ca { cert, key, dir }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate for `localhost`/127.0.0.1 named `name` with `serial`, signed by the CA
    /// (its key made with `key`), written to `NAME.pem` (leaf then CA: a full chain) and
    /// `NAME.key`.
    fn issue(&self, name: &str, serial: u64, key: KeyPair) -> ServerCert {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.serial_number = Some(SerialNumber::from(serial));
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let certfile = self.dir.join(format!("{name}.pem"));
        let keyfile = self.dir.join(format!("{name}.key"));
        std::fs::write(&certfile, format!("{}{}", cert.pem(), self.cert.pem())).unwrap();
        std::fs::write(&keyfile, key.serialize_pem()).unwrap();
        ServerCert {
            certfile,
            keyfile,
            der: cert.der().to_vec(),
        }
    }

    fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.cert.der().to_vec()))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

fn tls_server(cert: &ServerCert) -> ServerBuilder {
    tls_sample_server("echo", cert)
}

/// The sample app `name` served over TLS with `cert`.
fn tls_sample_server(name: &str, cert: &ServerCert) -> ServerBuilder {
    sample_server(name).args([
        "--certfile".as_ref(),
        cert.certfile.as_os_str(),
        "--keyfile".as_ref(),
        cert.keyfile.as_os_str(),
    ])
}

/// A rustls client connection over TCP, and the bytes it read past the last response.
struct TlsClient {
    stream: StreamOwned<ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

/// One HTTP response read by [`TlsClient`].
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl TlsClient {
    /// Connects and completes the handshake.
    fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> TlsClient {
        TlsClient::connect_after(addr, config, b"")
    }

    /// Connects, sends `preamble` in plain text (a PROXY protocol header), then completes the
    /// handshake.
    fn connect_after(addr: SocketAddr, config: &Arc<ClientConfig>, preamble: &[u8]) -> TlsClient {
        let mut sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        sock.write_all(preamble).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(Arc::clone(config), name).unwrap();
        let mut stream = StreamOwned::new(conn, sock);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).unwrap();
        }
        TlsClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// The certificate the server presented first (its own).
    fn leaf(&self) -> Vec<u8> {
        self.stream.conn.peer_certificates().unwrap()[0].to_vec()
    }

    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Reply {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.stream.write_all(head.as_bytes()).unwrap();
        self.stream.write_all(body).unwrap();
        self.stream.flush().unwrap();
        self.read_reply()
    }

    fn read_reply(&mut self) -> Reply {
        let end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            self.fill();
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
        let status = head[9..12].parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().unwrap())
            })
            .expect("a Content-Length");
        while self.buf.len() < end + length {
            self.fill();
        }
        let body = self.buf[end..end + length].to_vec();
        self.buf.drain(..end + length);
        Reply { status, head, body }
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).unwrap();
        assert!(n > 0, "the server closed the connection mid-response");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

/// Waits until the server closes `sock` (EOF or reset), reading and discarding what it sends;
/// returns how long that took from `since`, or `None` if it is still open after `within`.
fn wait_closed(sock: &mut TcpStream, since: Instant, within: Duration) -> Option<Duration> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut scratch = [0u8; 4096];
    while since.elapsed() < within {
        match sock.read(&mut scratch) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(since.elapsed()),
        }
    }
    None
}

fn have_curl_and_openssl() -> bool {
    // Debian's curl and openssl are installed by .ci/run; without them this is a setup error.
    assert!(
        have_program("curl"),
        "curl is needed (apt-get install curl)"
    );
    assert!(
        Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "openssl (the command) is needed (apt-get install openssl)"
    );
    true
}

/// `curl --cacert CA https://localhost:PORT/PATH` with a body: status and body.
fn curl(ca: &Path, port: u16, path: &str, data: Option<&str>) -> (String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-w", "\n%{http_code} %{http_version} %{scheme}"]);
    if let Some(data) = data {
        cmd.args(["--data-binary", data]);
    }
    cmd.arg(format!("https://localhost:{port}{path}"));
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, last) = stdout.rsplit_once('\n').unwrap();
    (last.to_owned(), body.to_owned())
}

#[test]
fn curl_over_https_with_the_ca() {
    have_curl_and_openssl();
    let ca = Ca::new("tls-curl");
    let cert = ca.issue("server-one", 1, KeyPair::generate().unwrap());
    let server = tls_server(&cert).start();
    let (status, body) = curl(&ca.ca_file(), server.port(), "/hello?x=1", Some("ping"));
    assert_eq!(status, "200 1.1 HTTPS", "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["method"], "POST");
    assert_eq!(json["path"], "/hello");
    assert_eq!(json["body_len"], 4);
    assert_eq!(json["url_scheme"], "https");
}

#[test]
fn rustls_client_keeps_alive_posts_and_negotiates_http_1_1() {
    let ca = Ca::new("tls-client");
    let cert = ca.issue("server-one", 1, KeyPair::generate().unwrap());
    let server = tls_server(&cert).start();
    let mut client = TlsClient::connect(server.addr(), &ca.client_config());
    assert_eq!(
        client.stream.conn.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "ALPN"
    );
    assert_eq!(client.leaf(), cert.der);
    let body = pseudo_random_bytes(300_000, 7);
    for round in 0..3 {
        let reply = client.request("POST", &format!("/upload/{round}"), &body);
        assert_eq!(reply.status, 200, "{}", reply.head);
        let json = reply.json();
        assert_eq!(json["body_len"], body.len());
        assert_eq!(json["body_sha256"], sha256_hex(&body));
        assert_eq!(json["url_scheme"], "https");
        let reply = client.request("GET", "/get", b"");
        assert_eq!(reply.json()["path"], "/get");
    }
    // A plain-HTTP server's environ says http (the scheme comes from the connection).
    let plain = sample_server("echo").start();
    assert_eq!(plain.get("/").json()["url_scheme"], "http");
}

#[test]
fn every_key_form_is_served() {
    have_curl_and_openssl();
    let dir = fresh_dir("tls-keys");
    // (name, openssl req -newkey argument, key form written: traditional = PKCS#1 / SEC1)
    let cases = [
        ("rsa-pkcs1", "rsa:2048", true),
        ("ec-sec1", "ec", true),
        ("ec-pkcs8", "ec", false),
        ("ed25519-pkcs8", "ed25519", false),
    ];
    for (name, newkey, traditional) in cases {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        let mut req = Command::new("openssl");
        req.args(["req", "-x509", "-nodes", "-days", "2", "-newkey", newkey]);
        if newkey == "ec" {
            req.args(["-pkeyopt", "ec_paramgen_curve:prime256v1"]);
        }
        req.args(["-subj", "/CN=localhost", "-addext"])
            .arg("subjectAltName=DNS:localhost")
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert);
        assert!(req.output().unwrap().status.success(), "openssl req {name}");
        if traditional {
            let out = Command::new("openssl")
                .args(["pkey", "-traditional", "-in"])
                .arg(&key)
                .output()
                .unwrap();
            assert!(out.status.success());
            let pem = String::from_utf8(out.stdout).unwrap();
            assert!(
                pem.contains("BEGIN RSA PRIVATE KEY") || pem.contains("BEGIN EC PRIVATE KEY"),
                "{pem}"
            );
            std::fs::write(&key, pem).unwrap();
        }
        let server = sample_server("echo")
            .args(["--certfile".as_ref(), cert.as_os_str()])
            .args(["--keyfile".as_ref(), key.as_os_str()])
            .start();
        let (status, body) = curl(&cert, server.port(), "/", None);
        assert_eq!(status, "200 1.1 HTTPS", "{name}: {body}");
    }
}

#[test]
fn a_stalled_handshake_is_dropped_at_the_header_timeout_while_others_are_served() {
    let ca = Ca::new("tls-stall");
    let cert = ca.issue("server-one", 1, KeyPair::generate().unwrap());
    // One serving thread: a handshake that held it would stall every other client.
    let server = tls_server(&cert)
        .args(["--threads", "1", "--header-timeout", "2"])
        .start();
    let config = ca.client_config();

    // A client that sends its ClientHello, takes the server's answer and goes quiet.
    let connected = Instant::now();
    let mut stalled = TcpStream::connect(server.addr()).unwrap();
    let mut hello = Vec::new();
    let mut half = ClientConnection::new(
        Arc::clone(&config),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    half.write_tls(&mut hello).unwrap();
    stalled.write_all(&hello).unwrap();
    // And one that sends only the first bytes of a record.
    let mut silent = TcpStream::connect(server.addr()).unwrap();
    silent
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0xc8, 0x01])
        .unwrap();

    // Meanwhile other clients are served, each at once.
    for i in 0..5 {
        let started = Instant::now();
        let mut client = TlsClient::connect(server.addr(), &config);
        let reply = client.request("GET", &format!("/other/{i}"), b"");
        assert_eq!(reply.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a client waited {:?} behind a stalled handshake",
            started.elapsed()
        );
    }

    for (what, sock) in [("mid-handshake", &mut stalled), ("silent", &mut silent)] {
        let closed = wait_closed(sock, connected, Duration::from_secs(8))
            .unwrap_or_else(|| panic!("the {what} client is still connected after 8 s"));
        assert!(
            closed >= Duration::from_millis(1500),
            "the {what} client was dropped after {closed:?}, before --header-timeout 2"
        );
    }
    // Still serving.
    let reply = TlsClient::connect(server.addr(), &config).request("GET", "/after", b"");
    assert_eq!(reply.status, 200);
}

#[test]
fn garbage_instead_of_a_client_hello_is_closed_with_a_rate_limited_line() {
    let ca = Ca::new("tls-garbage");
    let cert = ca.issue("server-one", 1, KeyPair::generate().unwrap());
    let server = tls_server(&cert).start();
    const ATTEMPTS: usize = 12;
    for i in 0..ATTEMPTS {
        let mut sock = TcpStream::connect(server.addr()).unwrap();
        let garbage: &[u8] = if i % 2 == 0 {
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
        } else {
            b"\x00\x01\x02 not TLS at all \xff\xfe\r\n\r\n"
        };
        sock.write_all(garbage).unwrap();
        let since = Instant::now();
        assert!(
            wait_closed(&mut sock, since, Duration::from_secs(3)).is_some(),
            "garbage #{i}: the connection stayed open"
        );
    }
    let logged = poll(Duration::from_secs(5), "a handshake failure line", || {
        let stderr = server.stderr();
        let count = stderr
            .lines()
            .filter(|l| l.contains("TLS handshake failed"))
            .count();
        (count > 0).then_some(count)
    });
    assert!(
        logged < ATTEMPTS,
        "{logged} lines for {ATTEMPTS} garbage connections: not rate-limited\n{}",
        server.stderr()
    );
    // The server still serves TLS.
    let reply = TlsClient::connect(server.addr(), &ca.client_config()).request("GET", "/", b"");
    assert_eq!(reply.status, 200);
}

/// Replaces `to` with `from`'s content the way a deployment should (write, then rename).
fn install(from: &Path, to: &Path) {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

#[test]
fn hup_switches_the_certificate_and_a_broken_one_keeps_the_old_serving() {
    let ca = Ca::new("tls-hup");
    let one = ca.issue("server-one", 1, KeyPair::generate().unwrap());
    let two = ca.issue(
        "server-two",
        2,
        KeyPair::generate_for(&PKCS_ED25519).unwrap(),
    );
    // The live files the server is started with.
    let live = ServerCert {
        certfile: ca.dir.join("live.pem"),
        keyfile: ca.dir.join("live.key"),
        der: one.der.clone(),
    };
    install(&one.certfile, &live.certfile);
    install(&one.keyfile, &live.keyfile);
    let pid_file = ca.dir.join("ws.pid");
    let server = tls_server(&live)
        .args(["--pid".as_ref(), pid_file.as_os_str()])
        .args(["-w", "2"])
        .start();
    wait_first_ready(&pid_file);
    let config = ca.client_config();
    let first = TlsClient::connect(server.addr(), &config);
    assert_eq!(first.leaf(), one.der, "generation 1 serves certificate one");
    drop(first);

    install(&two.certfile, &live.certfile);
    install(&two.keyfile, &live.keyfile);
    server.signal(libc::SIGHUP);
    poll(SWAP_TIMEOUT, "generation 2 ready", || {
        read_status(&pid_file).filter(|(state, generation, _)| state == "ready" && *generation == 2)
    });
    for _ in 0..4 {
        let client = TlsClient::connect(server.addr(), &config);
        assert_eq!(
            client.leaf(),
            two.der,
            "after HUP: certificate two (serial 2)"
        );
    }

    // A broken certificate: the swap is refused with its reason, and two keeps serving.
    std::fs::write(&live.certfile, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    server.signal(libc::SIGHUP);
    let (_, _, reason) = poll(SWAP_TIMEOUT, "generation 3 failed", || {
        read_status(&pid_file)
            .filter(|(state, generation, _)| state == "failed" && *generation == 3)
    });
    assert!(reason.contains("--certfile"), "status reason: {reason}");
    let line = server
        .wait_for_log(Duration::from_secs(5), |l| l.contains("hot swap failed"))
        .expect("a log line for the refused swap");
    assert!(line.contains("certificate"), "{line}");
    assert!(line.contains("keeps serving"), "{line}");
    // A key that is not the certificate's is refused too.
    install(&one.certfile, &live.certfile);
    server.signal(libc::SIGHUP);
    let (_, _, reason) = poll(SWAP_TIMEOUT, "generation 4 failed", || {
        read_status(&pid_file)
            .filter(|(state, generation, _)| state == "failed" && *generation == 4)
    });
    assert!(
        reason.contains("does not belong"),
        "status reason: {reason}"
    );
    for _ in 0..4 {
        let mut client = TlsClient::connect(server.addr(), &config);
        assert_eq!(
            client.leaf(),
            two.der,
            "the failed swaps left certificate two"
        );
        assert_eq!(client.request("GET", "/", b"").status, 200);
    }
}

#[test]
fn a_bad_certificate_at_startup_is_one_error_line() {
    let ca = Ca::new("tls-startup");
    let good = ca.issue("server-one", 1, KeyPair::generate().unwrap());
    let other = ca.issue("server-two", 2, KeyPair::generate().unwrap());
    let missing = ca.dir.join("missing.pem");
    let garbage = ca.dir.join("garbage.pem");
    std::fs::write(&garbage, "hello\n").unwrap();
    let cases: [(&Path, &Path, &[&str]); 4] = [
        (
            &missing,
            &good.keyfile,
            &["cannot read the TLS certificate", "missing.pem"],
        ),
        (
            &garbage,
            &good.keyfile,
            &["no certificate in --certfile", "garbage.pem"],
        ),
        (
            &good.certfile,
            &garbage,
            &["no private key in --keyfile", "garbage.pem"],
        ),
        (
            &good.certfile,
            &other.keyfile,
            &["does not belong to the certificate"],
        ),
    ];
    for (certfile, keyfile, needles) in cases {
        let exited = sample_server("echo")
            .args(["--certfile".as_ref(), certfile.as_os_str()])
            .args(["--keyfile".as_ref(), keyfile.as_os_str()])
            .run_to_exit();
        assert_load_error(&exited, needles);
    }
}

#[test]
fn ciphers_pins_the_suite() {
    let ca = Ca::new("tls-ciphers");
    let cert = ca.issue("server-one", 1, KeyPair::generate().unwrap());
    let server = tls_server(&cert)
        .args(["--ciphers", "TLS_CHACHA20_POLY1305_SHA256"])
        .start();
    let client = TlsClient::connect(server.addr(), &ca.client_config());
    let suite = client.stream.conn.negotiated_cipher_suite().unwrap();
    assert_eq!(
        suite.suite(),
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
    );
    let exited = sample_server("echo")
        .args(["--certfile".as_ref(), cert.certfile.as_os_str()])
        .args(["--keyfile".as_ref(), cert.keyfile.as_os_str()])
        .args(["--ciphers", "TLS_NOPE"])
        .run_to_exit();
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    assert!(
        exited.stderr.contains("unknown cipher suite"),
        "{}",
        exited.stderr
    );
}

#[test]
fn only_the_listeners_that_say_tls_serve_it() {
    let ca = Ca::new("tls-listeners");
    let cert = ca.issue("server-one", 1, KeyPair::generate().unwrap());
    let server = tls_server(&cert)
        .no_default_bind()
        .args(["--bind", "127.0.0.1:0", "--bind", "127.0.0.1:0,tls"])
        .start();
    // `Serving HTTP on 127.0.0.1:A, 127.0.0.1:B ...`
    let stdout = server.stdout();
    let addrs: Vec<SocketAddr> = stdout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("Serving HTTP on "))
        .and_then(|l| l.strip_suffix(" ..."))
        .unwrap_or_else(|| panic!("banner: {stdout}"))
        .split(", ")
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(addrs.len(), 2, "{stdout}");
    let mut plain = Conn::connect(addrs[0]);
    plain.send("GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(plain.read_response().json()["url_scheme"], "http");
    let mut tls = TlsClient::connect(addrs[1], &ca.client_config());
    assert_eq!(
        tls.request("GET", "/tls", b"").json()["url_scheme"],
        "https"
    );

    // `tls` without a certificate is refused at startup.
    let exited = sample_server("echo")
        .no_default_bind()
        .args(["--bind", "127.0.0.1:0,tls"])
        .run_to_exit();
    assert_load_error(&exited, &["asks for tls", "--certfile"]);
}

#[test]
fn a_tls_listener_with_the_proxy_option_reads_the_header_before_the_handshake() {
    let ca = Ca::new("tls-proxy");
    let cert = ca.issue("server-one", 1, KeyPair::generate().unwrap());
    let server = tls_server(&cert)
        .no_default_bind()
        .args(["--bind", "127.0.0.1:0,tls,proxy"])
        .start();
    let addr = server.addr();
    let config = ca.client_config();
    // The header and the ClientHello may arrive in one segment: the bytes after the header
    // are the handshake's.
    let mut client = TlsClient::connect_after(
        addr,
        &config,
        b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 443\r\n",
    );
    let who = client.request("GET", "/who", b"").json();
    assert_eq!(who["remote_addr"], "198.51.100.7", "{who}");
    assert_eq!(who["remote_port"], "40000", "{who}");
    assert_eq!(who["url_scheme"], "https", "{who}");
    // Keep-alive works on after it.
    assert_eq!(client.request("GET", "/again", b"").status, 200);
    // No PROXY header: the TLS ClientHello is not one, and the connection is closed.
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(
        wait_closed(&mut sock, Instant::now(), IO_TIMEOUT).is_some(),
        "a connection without a PROXY header stayed open"
    );
}

#[test]
fn a_tls_client_that_does_not_read_a_deferred_stream_holds_no_serving_thread() {
    const STREAM_BYTES: usize = 32 << 20;
    let ca = Ca::new("tls-unread");
    let cert = ca.issue("server-one", 1, KeyPair::generate().unwrap());
    let server = tls_sample_server("axum_app", &cert)
        .args(["--threads", "1"])
        .start();
    let config = ca.client_config();
    let mut slow = TlsClient::connect(server.addr(), &config);
    slow.stream
        .write_all(format!("GET /bytes?n={STREAM_BYTES} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    slow.stream.flush().unwrap();
    // Long enough for the socket buffers to fill and the server's write to find no room.
    std::thread::sleep(Duration::from_millis(500));
    let (answered, answer) = std::sync::mpsc::channel();
    let addr = server.addr();
    let other_config = Arc::clone(&config);
    let began = Instant::now();
    std::thread::spawn(move || {
        let mut other = TlsClient::connect(addr, &other_config);
        let _ = answered.send(other.request("GET", "/", b"").status);
    });
    assert_eq!(
        answer.recv_timeout(Duration::from_secs(5)),
        Ok(200),
        "another TLS request waited {:?} behind a client that does not read",
        began.elapsed()
    );
    // The stream still arrives whole (chunked) once its client reads.
    while !slow.buf.ends_with(b"\r\n0\r\n\r\n") {
        slow.fill();
    }
    assert!(slow.buf.starts_with(b"HTTP/1.1 200 "));
    assert!(slow.buf.len() > STREAM_BYTES, "{} bytes", slow.buf.len());
}

// ---------------------------------------------------------------------------------------------
// Closing: close_notify both ways
// ---------------------------------------------------------------------------------------------

impl TlsClient {
    /// Reads until the connection ends: `Ok` after the server's close_notify (rustls's clean end
    /// of stream), the error otherwise (`UnexpectedEof`: closed without close_notify).
    fn read_to_close(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("{:?}: {e}", e.kind())),
            }
        }
    }

    /// Writes `bytes` and the client's close_notify in one write to the socket.
    fn send_with_close_notify(&mut self, bytes: &[u8]) {
        self.stream.conn.writer().write_all(bytes).unwrap();
        self.stream.conn.send_close_notify();
        let mut records = Vec::new();
        while self.stream.conn.wants_write() {
            self.stream.conn.write_tls(&mut records).unwrap();
        }
        self.stream.sock.write_all(&records).unwrap();
    }
}

#[test]
fn every_close_the_server_initiates_sends_close_notify() {
    let ca = Ca::new("tls-close-notify");
    let cert = ca.issue("server-one", 1, KeyPair::generate().unwrap());
    let config = ca.client_config();
    let mut server = tls_server(&cert).args(["--keep-alive", "1"]).start();
    let addr = server.addr();
    let close_after = |what: &str, send: &[u8]| {
        let mut client = TlsClient::connect(addr, &config);
        client.stream.write_all(send).unwrap();
        client.stream.flush().unwrap();
        let closed = client.read_to_close();
        let answer = String::from_utf8_lossy(&client.buf).into_owned();
        assert_eq!(closed, Ok(()), "{what}: no close_notify; got {answer:?}");
        answer
    };
    let answer = close_after(
        "Connection: close",
        b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let answer = close_after("an invalid request", b"GET /a HTTP/1.1\r\nHost x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    let answer = close_after(
        "the keep-alive timeout",
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    // A drain: an idle keep-alive connection when the server stops.
    let mut idle = TlsClient::connect(addr, &config);
    assert_eq!(idle.request("GET", "/idle", b"").status, 200);
    server.signal(libc::SIGTERM);
    assert_eq!(idle.read_to_close(), Ok(()), "the drain: no close_notify");
    assert!(server.wait_exit(IO_TIMEOUT).is_some());
}

#[test]
fn openssl_s_client_sees_a_clean_close() {
    have_curl_and_openssl();
    let ca = Ca::new("tls-s-client");
    let cert = ca.issue("server-one", 1, KeyPair::generate().unwrap());
    let server = tls_server(&cert).start();
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect"])
        .arg(format!("127.0.0.1:{}", server.port()))
        .arg("-CAfile")
        .arg(ca.ca_file())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"GET /s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    // stdin stays open: s_client ends when the server closes, not when its input does.
    let began = Instant::now();
    while child.try_wait().unwrap().is_none() && began.elapsed() < IO_TIMEOUT {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ended = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.starts_with("HTTP/1.1 200 "), "{stdout}\n{stderr}");
    assert!(ended, "the server did not close:\n{stdout}\n{stderr}");
    assert!(
        !stderr.contains("unexpected eof"),
        "openssl saw no close_notify:\n{stderr}"
    );
}

#[test]
fn a_close_notify_that_comes_with_the_request_closes_right_after_the_response() {
    let ca = Ca::new("tls-client-close-notify");
    let cert = ca.issue("server-one", 1, KeyPair::generate().unwrap());
    let config = ca.client_config();
    // An app answering at once, and one whose request parks for its answer (the server must
    // not take the close_notify for a client that left). The default --keep-alive (5 s) is
    // what the connection waited before.
    for (app, target, body) in [
        ("echo", "/last", None),
        ("axum_app", "/sleep?ms=200", Some(&b"slept 200 ms\n"[..])),
    ] {
        let server = tls_sample_server(app, &cert).start();
        let mut client = TlsClient::connect(server.addr(), &config);
        let sent = Instant::now();
        client
            .send_with_close_notify(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let reply = client.read_reply();
        assert_eq!(reply.status, 200, "{app}: {}", reply.head);
        if let Some(body) = body {
            assert_eq!(reply.body, body, "{app}");
        }
        let closed = client.read_to_close();
        let took = sent.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "{app}: the server closed {took:?} after the request (keep-alive is 5 s)"
        );
        assert_eq!(closed, Ok(()), "{app}");
    }
}

#[test]
fn a_close_notify_in_the_middle_of_a_body_a_deferred_app_reads_ends_the_request_at_once() {
    let ca = Ca::new("tls-close-notify-body");
    let cert = ca.issue("server-one", 1, KeyPair::generate().unwrap());
    let server = tls_sample_server("axum_app", &cert).start();
    let mut client = TlsClient::connect(server.addr(), &ca.client_config());
    let sent = Instant::now();
    client.send_with_close_notify(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b",
    );
    let closed = client.read_to_close();
    let took = sent.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "the server closed {took:?} after the cut body (it waited for the rest)"
    );
    assert_eq!(closed, Ok(()));
    assert!(
        !String::from_utf8_lossy(&client.buf).starts_with("HTTP/1.1 200"),
        "a cut body was answered 200: {:?}",
        String::from_utf8_lossy(&client.buf)
    );
}
