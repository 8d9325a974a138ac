//! A TLS listener's certificate made at test time and a rustls client that trusts it, for tests
//! that speak something other than HTTP requests over TLS (upgraded connections, WebSockets).

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::{fresh_dir, IO_TIMEOUT};

/// A self-signed certificate for `localhost`/127.0.0.1 and its key, in a fresh directory.
pub struct TestTls {
    certfile: PathBuf,
    keyfile: PathBuf,
    der: Vec<u8>,
}

impl TestTls {
    pub fn new(tag: &str) -> TestTls {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = fresh_dir(tag);
        let (certfile, keyfile) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&certfile, cert.pem()).unwrap();
        std::fs::write(&keyfile, key.serialize_pem()).unwrap();
        TestTls {
            certfile,
            keyfile,
            der: cert.der().to_vec(),
        }
    }

    /// `--certfile` and `--keyfile` for the server.
    pub fn server_args(&self) -> Vec<std::ffi::OsString> {
        vec![
            "--certfile".into(),
            self.certfile.clone().into(),
            "--keyfile".into(),
            self.keyfile.clone().into(),
        ]
    }

    /// The certificate (PEM), for clients that take a CA file.
    pub fn cert_file(&self) -> &std::path::Path {
        &self.certfile
    }

    /// A rustls client configuration that trusts this certificate.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(self.der.clone())).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// A TLS connection to `addr` that trusts this certificate (reads time out after 10 s).
    pub fn connect(&self, addr: SocketAddr) -> StreamOwned<ClientConnection, TcpStream> {
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(self.client_config(), name).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        StreamOwned::new(conn, tcp)
    }
}

/// `GET path` on a `--stats` unix socket, the body as JSON.
pub fn stats_json(socket: &std::path::Path) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connect to {}: {e}", socket.display()));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /stats HTTP/1.1\r\nHost: stats\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    let text = String::from_utf8(all).unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("stats JSON: {e}: {text}"))
}
