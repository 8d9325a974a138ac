//! The first step of a request, taken in `call`: a service that is ready at once (a hello
//! route) is answered there, like an app that does not defer, and its exchange is dropped.
//!
//! `call` is answered the same host calls as `next` (the header's "Host I/O phases"), so the
//! exchange's first step runs in `call` as it would in the server's first `next`. What it gives
//! decides what `call` returns:
//! - the end, or the body's one and last chunk: the response as a plain body, with no deferred
//!   body for the server to pull — no boxed exchange, no `next` across the ABI for the chunk
//!   and the end. After a first chunk the body is polled once more: trailers that end it
//!   (gRPC's status after a unary reply) are sent in `call` too, and the chunk was the last.
//!   A last chunk as long as the body said it would be (`size_hint`, the head's length), or any
//!   last chunk over HTTP/2, goes out through the host's `write` and the body is empty: no body
//!   box, no `next` and no `close` across the ABI (the server holds a write that completes the
//!   body with its batch, for an app that never waits, as it would hold the chunk; an HTTP/2
//!   write only queues a frame for the HTTP/2 thread's next flush); another is the body's bytes;
//! - anything else (a future or body that is pending, a body with more chunks to come): the
//!   exchange as the deferred body, which goes on from where the step left it (a chunk it
//!   produced is handed over by the first `next`).

use crate::exchange::Exchange;
use app_abi::{Body, BodyIo, DeferredBody, Next, Request, Response};
use tower_service::Service;

/// What the first step gave, without its borrow of the exchange.
enum First {
    Chunk,
    End,
    Pending,
    Error,
}

/// Takes `exchange`'s first step in `call` and answers with what it gave.
pub(crate) fn answer<S, B>(mut exchange: Exchange<S, B>, req: &mut Request<'_>) -> Response
where
    S: Service<http::Request<crate::RequestBody>, Response = http::Response<B>>,
    S::Error: Into<crate::BoxError>,
    B: http_body::Body,
    B::Error: Into<crate::BoxError>,
    Exchange<S, B>: DeferredBody,
{
    let Some(mut io) = req.io() else {
        return Response::deferred(exchange);
    };
    let first = match exchange.next(&mut io) {
        Next::Chunk(_) => First::Chunk,
        Next::End => First::End,
        Next::Pending => First::Pending,
        Next::Error => First::Error,
    };
    if matches!(first, First::Chunk) && !exchange.is_finished() {
        // Trailers that follow at once (gRPC's status) are sent now, and the body ends here.
        exchange.look_ahead(&mut io);
    }
    match first {
        // The head went out through `start_response` in the step (or the connection was taken).
        First::End => Response::started(Body::empty()),
        First::Chunk if exchange.is_finished() => {
            let chunk = exchange.take_chunk();
            let completes = match exchange.exact_length() {
                Some(length) => length == chunk.len() as u64,
                // Over HTTP/2 a write only queues a DATA frame, sent with the batch; without
                // trailers to end the stream, the body below gives the head its length and
                // ends the stream with its one DATA frame instead.
                None => exchange.ends_with_http2_trailers(),
            };
            if !completes {
                // The server frames it by its length hint (an HTTP/1.1 head without a length
                // would take chunked framing, and a write would go out alone).
                return Response::started(Body::copy_from_slice(&chunk));
            }
            // A refused write (the client left, or the chunk is longer than the app's own
            // Content-Length: the server answers 500 if nothing was sent) is the server's to
            // answer, as for a body's chunk; the chunk goes no further.
            let _ = req.write(&chunk);
            Response::started(Body::empty())
        }
        First::Chunk => {
            exchange.replay_chunk();
            Response::deferred(exchange)
        }
        // Its waker is the server's already (made in the step): the server's `next` polls again.
        First::Pending => Response::deferred(exchange),
        // Logged by the step; the server answers 500 or cuts the connection, as from `next`.
        First::Error => Response::deferred(Failed),
    }
}

/// A response that failed in `call`: its one `next` says so.
struct Failed;

impl DeferredBody for Failed {
    fn next<'s>(&'s mut self, _io: &mut BodyIo<'_>) -> Next<'s> {
        Next::Error
    }
}
