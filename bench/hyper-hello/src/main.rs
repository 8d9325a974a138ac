//! `hyper-hello [PORT]`: the Rust reference for bench/run.sh. hyper 1.x serves HTTP/1.1 on
//! 127.0.0.1:PORT (default `$PORT`, else 8080) and answers every request with 200 and a 14-byte
//! greeting — the same bytes nginx's config in bench/ returns. One tokio worker thread per CPU
//! this process may run on (so `taskset -c 1` gives it one), unless `TOKIO_WORKER_THREADS` says
//! otherwise. It never reads a request body.

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
    let port_arg = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok());
    let port = match port_arg {
        Some(text) => text
            .parse::<u16>()
            .map_err(|e| format!("port {text:?}: {e}"))?,
        None => DEFAULT_PORT,
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        // available_parallelism follows the affinity mask, which the benchmark sets.
        let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        runtime.worker_threads(cpus);
    }
    runtime.build()?.block_on(serve(port))
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

/// Every request gets the greeting; hyper adds Content-Length (the body's exact size) and Date.
async fn greet(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(GREETING)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}
