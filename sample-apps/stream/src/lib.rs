//! `stream`: a chunked response produced over time, and counters that show `close` was called.
//!
//! - `GET /?n=N&delay_ms=D` (any path but `/closes`): N chunks `chunk i\n` (i from 0), the iterator
//!   sleeping D ms before each one; defaults n=5, delay_ms=50 (capped at 100000 and 60000).
//! - `GET /bytes?size=N`: one static body of N bytes (default 65536, at most 1 MiB), for the
//!   large-response benchmark.
//! - `GET /closes`: `opened=X closed=Y\n` — streams started and bodies released (`close`), counted
//!   in this process, so a test can see that a client disconnecting mid-stream still got `close`.

use app_abi::{export_app, App, Body, InitContext, Request, Response};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Streams whose body was handed to the server.
static OPENED: AtomicU64 = AtomicU64::new(0);
/// Stream bodies released by the server's `close`.
static CLOSED: AtomicU64 = AtomicU64::new(0);

/// A numeric query parameter, or `default` if absent or malformed, capped at `max`.
fn param(req: &Request<'_>, name: &[u8], default: u64, max: u64) -> u64 {
    req.query_param(name)
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(default)
        .min(max)
}

/// The app: no state beyond the counters.
pub struct Stream;

impl App for Stream {
    fn init(_ctx: &InitContext<'_>) -> Result<Self, String> {
        Ok(Stream)
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        if req.path() == b"/closes" {
            let text = format!(
                "opened={} closed={}\n",
                OPENED.load(Ordering::SeqCst),
                CLOSED.load(Ordering::SeqCst)
            );
            return Response::text(200, text);
        }
        if req.path() == b"/bytes" {
            // One static body of `size` bytes (Content-Length): the large-response benchmark.
            let size = param(req, b"size", 65_536, STATIC_BYTES.len() as u64) as usize;
            return Response::new(200)
                .header("Content-Type", "application/octet-stream")
                .body(&STATIC_BYTES[..size]);
        }
        let n = param(req, b"n", 5, 100_000);
        let delay = Duration::from_millis(param(req, b"delay_ms", 50, 60_000));
        let chunks = (0..n).map(move |i| {
            std::thread::sleep(delay);
            format!("chunk {i}\n")
        });
        OPENED.fetch_add(1, Ordering::SeqCst);
        let body = Body::from_iter(chunks).with_on_close(|| {
            CLOSED.fetch_add(1, Ordering::SeqCst);
        });
        Response::text(200, body)
    }
}

/// The bytes `/bytes` serves from (1 MiB of `x`, static so serving them allocates nothing).
static STATIC_BYTES: [u8; 1 << 20] = [b'x'; 1 << 20];

export_app!(app, Stream, name = "stream", version = "1.0");
