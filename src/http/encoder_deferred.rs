//! The encoder across a deferred body (ABI 1.1 `WS_PENDING`): suspending a response while its
//! request is parked off any thread, resuming it on another, and giving up on it (`--timeout`,
//! the end of a drain, a client that left).

use super::{Encoder, Pending, ResponseContext, Scratch, State, Wire};

/// An encoder between two calls of a deferred body's `next` (ABI 1.1 `WS_PENDING`): everything
/// but the borrows, so the request can wait off any thread and resume on another. Its output was
/// flushed when it was suspended, head included once the app had set one (see
/// [`Encoder::suspend`]); a head still pending stays at the start of `Scratch::out` and travels
/// with the request's own `Scratch`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Suspended {
    context: ResponseContext,
    state: State,
    keep_alive: bool,
    length_hint: Option<u64>,
    status: u16,
    body_sent: u64,
}

impl<'a, W: Wire + ?Sized> Encoder<'a, W> {
    /// Continues a suspended response on `wire`, with the request's own `scratch`. The finished
    /// response is sent at once: the pipelined requests it was held for were answered meanwhile.
    /// `keep_alive` false (the server began draining meanwhile) withdraws keep-alive if the
    /// head is not out yet.
    pub(crate) fn resume(
        wire: &'a mut W,
        scratch: &'a mut Scratch,
        suspended: Suspended,
        app_name: &'a str,
        keep_alive: bool,
    ) -> Self {
        Encoder {
            wire,
            scratch,
            context: ResponseContext {
                defer_flush: false,
                hold_completing_write: false,
                ..suspended.context
            },
            app_name,
            state: suspended.state,
            keep_alive: suspended.keep_alive && keep_alive,
            length_hint: suspended.length_hint,
            status: suspended.status,
            body_sent: suspended.body_sent,
            base: 0,
        }
    }

    /// The app's `next` pended: send everything buffered (held pipelined responses too — the
    /// client must not wait for them while the app works) and keep the rest for `resume`.
    ///
    /// A response the app has set goes out now with its head, as hyper sends a head when the
    /// handler returns: a stream (server-sent events, a long poll that answers in parts) must
    /// not look stalled to its client until its first chunk. From then on, giving up on it
    /// (`--timeout`, the end of a drain) cuts the body instead of answering 504 or 503. A head
    /// waits still while the request body is unread, so that the connection's reuse is decided
    /// once the body's end is known.
    pub(crate) fn suspend(mut self) -> Suspended {
        if matches!(self.state, State::Head(Pending::Set { .. })) && self.wire.body_done() {
            self.ensure_head();
        }
        self.flush();
        Suspended {
            context: self.context,
            state: self.state,
            keep_alive: self.keep_alive,
            length_hint: self.length_hint,
            status: self.status,
            body_sent: self.body_sent,
        }
    }

    /// Sends what this response has buffered unless the caller batches it (`defer_flush`): a
    /// deferred request checks afterwards whether its output waits for the client.
    pub(crate) fn flush_unless_held(&mut self) {
        if !self.context.defer_flush || self.scratch.out.len() >= super::HOLD_LIMIT {
            self.flush();
        }
    }

    /// The server gives up on a deferred request (504 past `--timeout`, 503 when a stop's
    /// graceful timeout ran out): `status` if nothing was sent, else the connection closes
    /// mid-body. Either way the connection closes afterwards.
    pub(crate) fn give_up(&mut self, status: u16) {
        self.keep_alive = false;
        match self.state {
            State::Head(_) => {
                self.send_error(status);
            }
            State::ClientGone => {}
            State::Body(_) | State::Done | State::Broken => self.state = State::Broken,
        }
    }

    /// The client left while the request was parked: nothing more goes out.
    pub(crate) fn client_gone(&mut self) {
        self.scratch.out.clear();
        self.base = 0;
        self.state = State::ClientGone;
    }
}
