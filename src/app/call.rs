//! One request through the app: `call`, body iteration and `close`, driven through the
//! response encoder (`http/encoder.rs`), which owns every decision about the response.
//!
//! The encoder lives in the request's [`Exchange`] (behind `ws_request.io`), which the app's
//! host callbacks reach too; this file borrows it only between calls into the app and marks
//! which app function runs, so that host I/O from `call` and `next` is answered and from
//! `close` refused (the header's "Host I/O phases").

use std::io;
use std::time::Instant;

use app_abi::raw::{WsBody, WsBytes, WsPair, WsRequest, WS_LENGTH_UNKNOWN, WS_OK};

use super::exchange::{Exchange, Phase};
use super::host::HOST;
use super::loader::LoadedApp;
use crate::http::encoder::{Encoder, Outcome, ResponseContext, BURST};
use crate::http::response::DateCache;

pub(crate) use super::exchange::Transport;
pub(crate) use crate::http::encoder::Scratch;

/// Facts about the request that shape the response.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestFacts {
    pub(crate) is_head: bool,
    pub(crate) version_minor: u8,
    /// The client allows keep-alive and the server is not draining.
    pub(crate) keep_alive: bool,
    pub(crate) flags: u32,
    /// Leave the finished response in `Scratch::out` for the caller to send with the responses
    /// to further pipelined requests (one write per batch); the caller must flush it.
    pub(crate) defer_flush: bool,
}

impl RequestFacts {
    fn response_context(&self) -> ResponseContext {
        ResponseContext {
            is_head: self.is_head,
            version_minor: self.version_minor,
            keep_alive: self.keep_alive,
            defer_flush: self.defer_flush,
        }
    }
}

/// Run one request through `app`. `environ` is the request's CGI/WSGI variables.
pub(crate) fn run<'a>(
    app: &'a LoadedApp,
    environ: &[WsPair],
    facts: RequestFacts,
    transport: &'a mut (dyn Transport + 'a),
    scratch: &'a mut Scratch,
) -> Outcome {
    let encoder = Encoder::new(transport, scratch, facts.response_context(), app.name());
    let exchange = Exchange::new(encoder, app.name());
    let request = WsRequest {
        size: std::mem::size_of::<WsRequest>() as u32,
        flags: facts.flags,
        environ: environ.as_ptr(),
        environ_len: environ.len(),
        io: exchange.io_handle(),
        host: &HOST,
        log_ctx: app.log_ctx(),
    };
    let mut body = WsBody::EMPTY;
    exchange.enter(Phase::Call);
    // SAFETY: `request`, its environ and `exchange` (behind io) outlive the call and the body's
    // `close` below, which is called once when `call` returns WS_OK; `body` is a valid
    // out-pointer. No borrow of the exchange is held while the app runs.
    let rc = unsafe { app.call(&request, &mut body) };
    if rc != WS_OK {
        log::error!(target: "app", "[{}] call failed with code {rc}", app.name());
        exchange.drive(|encoder| encoder.fail());
    } else {
        drive_body(&exchange, &body, facts.is_head, app.name());
        exchange.enter(Phase::Close);
        if let Some(close) = body.close {
            // SAFETY: call returned WS_OK, so the server owes exactly one close on this ctx, and
            // this is the only one (drive_body never calls it). No borrow is held.
            unsafe { close(body.ctx) };
        }
    }
    exchange.finish()
}

/// Pulls the body's chunks into the encoder. The encoder is borrowed between calls to `next`,
/// never across one.
fn drive_body(exchange: &Exchange<'_>, body: &WsBody, is_head: bool, app_name: &str) {
    let hint = (body.length_hint != WS_LENGTH_UNKNOWN).then_some(body.length_hint);
    exchange.drive(|encoder| encoder.set_length_hint(hint));
    let next = match body.next {
        // HEAD: the framing headers are those of GET, but no chunk is ever pulled.
        Some(_) if is_head => return exchange.drive(|encoder| encoder.end_unpulled()),
        Some(next) => next,
        // No chunks at all: whatever came by write() is the whole body.
        None => return exchange.drive(|encoder| encoder.end()),
    };
    let mut burst = false;
    loop {
        // Flush before asking for more — the app may take its time producing the next chunk,
        // and what it already produced must reach the client meanwhile — unless the encoder
        // holds it back (a complete body, a burst of small chunks).
        let timed =
            exchange.drive(|encoder| encoder.before_next(burst).then(|| encoder.next_is_timed()));
        let Some(timed) = timed else { return };
        let asked = timed.then(Instant::now);
        let mut chunk = WsBytes::EMPTY;
        exchange.enter(Phase::Next);
        // SAFETY: ctx/next come from a successful call; chunk is a valid out-pointer. No borrow
        // of the exchange is held while the app runs.
        let rc = unsafe { next(body.ctx, &mut chunk) };
        burst = asked.is_some_and(|t| t.elapsed() < BURST);
        let more = exchange.drive(|encoder| match rc {
            1 => {
                // SAFETY: the ABI keeps a chunk valid until the next `next` or `close`; the
                // encoder copies or writes it before either happens.
                let data = unsafe { chunk.as_slice() };
                encoder.chunk(data)
            }
            0 => {
                encoder.end();
                false
            }
            code => {
                log::error!(target: "app", "[{app_name}] body iterator failed with code {code}");
                encoder.fail();
                false
            }
        });
        if !more {
            return;
        }
    }
}

/// An in-memory connection for `check` and the ABI benchmark: no request body; the response is
/// encoded and dropped (the outcome reports its status and size).
#[derive(Default)]
pub(crate) struct MemoryTransport {
    date: DateCache,
}

impl Transport for MemoryTransport {
    fn read_body(&mut self, _buf: &mut [u8], _may_continue: bool) -> Result<usize, i32> {
        Ok(0)
    }

    fn write_all(&mut self, _parts: &[&[u8]]) -> io::Result<()> {
        Ok(())
    }

    fn body_consumed(&mut self) -> bool {
        true
    }

    fn date(&mut self) -> &[u8] {
        self.date.get()
    }
}
