//! `hyper-hello [PORT]`: the Rust reference for bench/run.sh. hyper 1.x serves HTTP/1.1 on
//! 127.0.0.1:PORT (default `$PORT`, else 8080) and answers every request with 200 and a 14-byte
//! greeting — the same bytes nginx's config in bench/ returns. One tokio worker thread per CPU
//! this process may run on (so `taskset -c 1` gives it one), unless `TOKIO_WORKER_THREADS` says
//! otherwise. It never reads a request body.
//!
//! `hyper-hello --http2 PORT TLSPORT CERT KEY [SUITE]`: for bench/http2.sh, hyper's HTTP/2
//! server instead: h2c with prior knowledge on PORT, and h2 over TLS (rustls, ALPN `h2`, TLS 1.3
//! with SUITE, default TLS_AES_128_GCM_SHA256) on TLSPORT, with the PEM certificate and key.

use std::convert::Infallible;
use std::error::Error;
use std::net::Ipv4Addr;
use std::num::NonZeroUsize;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const GREETING: &[u8] = b"Hello, World!\n";
const DEFAULT_PORT: u16 = 8080;
/// After a failed accept (typically EMFILE while thousands of idle connections are held), wait
/// this long instead of spinning on the same error.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--http2") {
        let [port, tls_port, cert, key, rest @ ..] = &args[1..] else {
            return Err("usage: hyper-hello --http2 PORT TLSPORT CERT KEY [SUITE]".into());
        };
        let suite = rest
            .first()
            .map_or("TLS_AES_128_GCM_SHA256", String::as_str);
        let tls = h2::tls_config(cert, key, suite)?;
        let (port, tls_port) = (parse_port(port)?, parse_port(tls_port)?);
        return runtime()?.block_on(h2::serve(port, tls_port, tls));
    }
    let port = match args.first().cloned().or_else(|| std::env::var("PORT").ok()) {
        Some(text) => parse_port(&text)?,
        None => DEFAULT_PORT,
    };
    runtime()?.block_on(serve(port))
}

fn parse_port(text: &str) -> Result<u16, Box<dyn Error>> {
    Ok(text
        .parse::<u16>()
        .map_err(|e| format!("port {text:?}: {e}"))?)
}

fn runtime() -> Result<tokio::runtime::Runtime, Box<dyn Error>> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        // available_parallelism follows the affinity mask, which the benchmark sets.
        let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        runtime.worker_threads(cpus);
    }
    Ok(runtime.build()?)
}

async fn serve(port: u16) -> Result<(), Box<dyn Error>> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    eprintln!(
        "hyper-hello: listening on http://{}",
        listener.local_addr()?
    );
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                eprintln!("hyper-hello: accept: {e}");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        // Small responses must leave at once, as every server in the comparison does.
        if let Err(e) = stream.set_nodelay(true) {
            eprintln!("hyper-hello: TCP_NODELAY: {e}");
        }
        tokio::spawn(async move {
            // A connection ends with an error whenever a client goes away mid-request; the
            // benchmark's clients do that at the end of every run, so it is not worth a line.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(greet))
                .await;
        });
    }
}

/// HTTP/2 (bench/http2.sh): the same greeting over h2c and h2.
mod h2 {
    use std::error::Error;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use hyper::server::conn::http2;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsAcceptor;

    use super::{greet, ACCEPT_RETRY};

    /// rustls with `suite` only (TLS 1.3), ALPN `h2`.
    pub fn tls_config(
        cert: &str,
        key: &str,
        suite: &str,
    ) -> Result<Arc<rustls::ServerConfig>, Box<dyn Error>> {
        let certs = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(key)?;
        let mut provider = rustls::crypto::ring::default_provider();
        // rustls spells the TLS 1.3 suites TLS13_*, OpenSSL and webserver's --ciphers TLS_*.
        let rustls_name = suite.replacen("TLS_", "TLS13_", 1);
        provider.cipher_suites.retain(|s| {
            let name = format!("{:?}", s.suite());
            name == suite || name == rustls_name
        });
        if provider.cipher_suites.is_empty() {
            return Err(format!("cipher suite {suite}: not one rustls with ring knows").into());
        }
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    pub async fn serve(
        port: u16,
        tls_port: u16,
        tls: Arc<rustls::ServerConfig>,
    ) -> Result<(), Box<dyn Error>> {
        let plain = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let secure = TcpListener::bind((Ipv4Addr::LOCALHOST, tls_port)).await?;
        eprintln!(
            "hyper-hello: HTTP/2 on http://{} (h2c) and https://{} (h2)",
            plain.local_addr()?,
            secure.local_addr()?
        );
        let acceptor = TlsAcceptor::from(tls);
        tokio::spawn(async move {
            loop {
                let Some(stream) = accept(&secure).await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_h2(TokioIo::new(stream)).await;
                    }
                });
            }
        });
        loop {
            if let Some(stream) = accept(&plain).await {
                tokio::spawn(serve_h2(TokioIo::new(stream)));
            }
        }
    }

    async fn accept(listener: &TcpListener) -> Option<TcpStream> {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                Some(stream)
            }
            Err(e) => {
                eprintln!("hyper-hello: accept: {e}");
                tokio::time::sleep(ACCEPT_RETRY).await;
                None
            }
        }
    }

    async fn serve_h2<I>(io: I)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        // hyper's defaults, as a service built on it would run (a client going away ends a
        // connection with an error, not worth a line).
        let _ = http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service_fn(greet))
            .await;
    }
}

/// Every request gets the greeting; hyper adds Content-Length (the body's exact size) and Date.
async fn greet(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(GREETING)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}
