//! Deferred requests (ABI 1.1): a request whose body's `next` answered `WS_PENDING` waits in its
//! connection, holding no thread, until its app wakes it, its client sends the body bytes it is
//! waiting for, or the server gives up on it.
//!
//! ```text
//!   serve_one ──next: WS_PENDING──▶ park: state into Phase::Parked, slot Idle (epoll + wakers)
//!        ▲                              │ waker_wake (any thread) → ready queue + eventfd
//!        │                              │ readable: body bytes (try_read pended) or hang-up
//!        │                              │ --timeout / end of drain (coordinator) → cancel
//!        └──── resume (any serving thread): next again, or close ◀──┘
//! ```
//! Parking moves what the request owns off the thread: the environ (the app holds pointers into
//! it, and `io` is its `ws_request`'s address), the response's state and buffers, the body
//! decoder. Only a request that parks allocates for this; the blocking path is unchanged.
//! While parked, input is read only up to [`PARKED_INPUT_LIMIT`] (back-pressure on an uploader
//! the app does not read yet); a client that closes is reported to the app as `close`.
//!
//! Output waits the same way: a 1.1 app's response bytes the socket has no room for stay in the
//! connection (`Conn::write_or_keep`), the body loop parks the request instead of asking for the
//! next chunk, and the connection is watched for room to send; `resume` sends them first and
//! calls `next` once they are out. Meanwhile the connection's deadline is `--io-timeout` (a
//! client that reads nothing is given up), and that wait does not count against `--timeout`.
//!
//! A wake may also stay on its thread (ABI 1.3 `waker_wake_here`): a serving thread that is
//! about to return from one request's app call and wakes others (the WSGI bridge, which ran
//! queued requests while it held the GIL) keeps their connections in a list of its own
//! ([`woken_here`]) and resumes them once it is back in its event loop — no eventfd write, no
//! other thread woken to send what is ready. A connection the thread was serving whose client
//! sent more meanwhile waits behind them, not they behind it. From any other thread such a wake is a plain one.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::Conn;
use super::serve::{self, log_access, After, BodyProgress, ConnTransport, ThreadScratch};
use super::slots::{Slots, Token};
use super::Shared;
use crate::app::call::{self, Cancel, Parked, Progress};
use crate::app::environ::Environ;
use crate::app::waker::Wake;

/// Input a parked request's connection buffers before the server stops reading from its socket.
pub(super) const PARKED_INPUT_LIMIT: usize = 64 * 1024;

/// Everything a parked request owns, kept in its connection.
pub(crate) struct ParkedRequest {
    /// `None` only while a thread runs it.
    pub(super) call: Option<Parked>,
    pub(super) environ: Environ,
    /// Where its body stands.
    pub(super) body: BodyProgress,
    /// When it started, if the statistics or the access log want its duration.
    pub(super) started: Option<Instant>,
    /// Woken, or given up on, since it parked.
    pub(crate) due: Due,
    /// Its last `try_read` pended: body bytes make `next` due.
    pub(super) wants_input: bool,
    /// Its `--timeout` deadline (waits for the client to read do not count: they move it on).
    pub(super) deadline: Instant,
    /// Since when its output has waited for the client to read, if it does.
    pub(super) output_waits_since: Option<Instant>,
}

/// What happened to a parked request besides its client (input, room to send): one value, so a
/// cancelled request cannot also be run again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing: it waits.
    Waiting,
    /// A waker was woken: `next` is due (once its output, if any waits, is out).
    Woken,
    /// The server gives up on it: `close` without another `next`.
    Cancelled(Cancel),
}

impl Due {
    /// A waker was woken (a cancellation stays one).
    pub(crate) fn woken(&mut self) {
        if *self == Due::Waiting {
            *self = Due::Woken;
        }
    }

    /// The server gives up on the request (the first reason given stays).
    pub(crate) fn cancel(&mut self, cancel: Cancel) {
        if !matches!(self, Due::Cancelled(_)) {
            *self = Due::Cancelled(cancel);
        }
    }

    /// Why it is given up on, if it is.
    fn cancelled(self) -> Option<Cancel> {
        match self {
            Due::Cancelled(cancel) => Some(cancel),
            _ => None,
        }
    }
}

/// The server's side of one app waker: wakes go to the slot table, which queues the request if
/// it is parked (see `slots.rs`).
pub(super) struct RequestWaker {
    pub(super) slots: Arc<Slots>,
    pub(super) token: Token,
    pub(super) request: u64,
}

impl Wake for RequestWaker {
    fn wake(&self) {
        self.slots.wake(self.token, self.request);
    }

    fn wake_here(&self) {
        let slots = Arc::as_ptr(&self.slots) as usize;
        let kept = HERE.try_with(|here| {
            let mut here = here.borrow_mut();
            let Some(here) = here.as_mut().filter(|here| here.slots == slots) else {
                return false;
            };
            if let Some(conn) = self.slots.take_woken(self.token, self.request) {
                here.woken.push_back(conn);
            }
            true
        });
        if kept != Ok(true) {
            self.slots.wake(self.token, self.request);
        }
    }
}

/// A serving thread's own ready list: the connections of requests woken on it with
/// `waker_wake_here`, for it to resume once its current work returns.
struct Here {
    /// The slot table (its address) the thread serves: a wake for another one (another
    /// generation's) is not this thread's to answer.
    slots: usize,
    woken: VecDeque<Box<Conn>>,
}

thread_local! {
    static HERE: RefCell<Option<Here>> = const { RefCell::new(None) };
}

/// This thread serves `slots`' connections from now on: wakes here may stay on it.
pub(super) fn serving_thread(slots: &Arc<Slots>) {
    HERE.with(|here| {
        *here.borrow_mut() = Some(Here {
            slots: Arc::as_ptr(slots) as usize,
            woken: VecDeque::new(),
        })
    });
}

/// The next connection woken on this thread with `waker_wake_here` (or queued behind those:
/// [`behind_woken_here`]), oldest first. The event
/// loop takes them all before it waits again, so none is left behind.
pub(super) fn woken_here() -> Option<Box<Conn>> {
    HERE.try_with(|here| here.borrow_mut().as_mut()?.woken.pop_front())
        .ok()
        .flatten()
}

/// `conn`, which has input to serve, back to the caller if no request was woken on this thread
/// and waits for it; otherwise it is queued behind those (the event loop takes them all, in
/// order, before it waits again) and `None` is returned.
pub(super) fn behind_woken_here(conn: Box<Conn>) -> Option<Box<Conn>> {
    let mut conn = Some(conn);
    // A thread-local already destroyed (the thread is exiting) keeps the connection with the
    // caller.
    let _ = HERE.try_with(|here| {
        if let Some(here) = here.borrow_mut().as_mut() {
            if !here.woken.is_empty() {
                here.woken.extend(conn.take());
            }
        }
    });
    conn
}

/// Keep `parked` in `conn` until its app makes progress (or, if its output waits for the
/// client, until the client read it); `parked.deadline` is its `--timeout`.
pub(super) fn park(
    conn: &mut Conn,
    mut parked: ParkedRequest,
    io_timeout: Duration,
    slots: &Slots,
) {
    set_deadline(conn, &mut parked, io_timeout);
    conn.park_request(Box::new(parked));
    slots.count_parked(true);
}

/// The deadline of a parked request's connection: its `--timeout`, or, while its output waits
/// for the client, `--io-timeout` from now (one wait for the client, as a blocking write has);
/// the time the client took to read is added to the `--timeout` deadline once it has.
fn set_deadline(conn: &mut Conn, parked: &mut ParkedRequest, io_timeout: Duration) {
    if conn.has_unsent() {
        let now = Instant::now();
        parked.output_waits_since.get_or_insert(now);
        conn.set_deadline(now + io_timeout);
    } else {
        if let Some(since) = parked.output_waits_since.take() {
            parked.deadline += since.elapsed();
        }
        conn.set_deadline(parked.deadline);
    }
}

/// A connection with a parked request was handed to this thread (woken, readable, cancelled):
/// run the request's `next` again if it is due, or its `close` if cancelled or its client left;
/// then serve what follows on the connection.
pub(super) fn resume(
    conn: &mut Conn,
    shared: &Shared,
    slots: &Arc<Slots>,
    scratch: &mut ThreadScratch,
) -> After {
    let Some(mut parked) = conn.take_parked() else {
        return serve::serve(conn, shared, slots, scratch);
    };
    let before = conn.input().len();
    if parked.due.cancelled().is_none() && !conn.poll_input(PARKED_INPUT_LIMIT) {
        log::debug!("{}: client left while its request was parked", conn.peer());
        parked.due = Due::Cancelled(Cancel::ClientGone);
    }
    let input_arrived = conn.input().len() > before;
    let mut output_sent = false;
    if conn.has_unsent() {
        if parked.due.cancelled().is_some() {
            // Given up on (too slow to read, --timeout, a drain): nothing more goes out.
            conn.drop_unsent();
            parked.due = Due::Cancelled(Cancel::ClientGone);
        } else {
            match conn.flush_unsent() {
                Ok(sent) => output_sent = sent,
                Err(e) => {
                    log::debug!(
                        "{}: client gone while sending the response: {e}",
                        conn.peer()
                    );
                    conn.drop_unsent();
                    parked.due = Due::Cancelled(Cancel::ClientGone);
                }
            }
        }
    }
    // While output waits for the client, a woken app stays woken: its `next` runs once the
    // client has read.
    let app_due = !conn.has_unsent()
        && (parked.due == Due::Woken || (parked.wants_input && input_arrived) || output_sent);
    let cancel = parked.due.cancelled();
    if cancel.is_none() && !app_due {
        set_deadline(conn, &mut parked, shared.config.io_timeout);
        conn.park_request(parked);
        return After::Park;
    }
    if parked.due == Due::Woken {
        parked.due = Due::Waiting;
    }
    parked.wants_input = false;
    let Some(call) = parked.call.take() else {
        log::error!("internal error: a parked request without its state; closing");
        slots.count_parked(false);
        return After::Close;
    };
    let thread = scratch.thread;
    let buffers = &mut scratch.buffers;
    let mut transport = ConnTransport::new(
        conn,
        parked.body,
        shared,
        thread,
        (&mut buffers.date, &mut buffers.body_sink),
        slots,
    );
    let progress = {
        let _serialised = shared.app_lock.as_ref().map(|lock| lock.lock());
        // As in `serve_one`: the clock starts once the app may run.
        shared.mark_busy(thread, true);
        call::resume(
            &shared.app,
            &parked.environ,
            call,
            &mut transport,
            cancel,
            !shared.draining(),
            &mut buffers.call,
        )
    };
    match progress {
        Progress::Pending(call) => {
            shared.mark_idle(thread);
            parked.call = Some(call);
            parked.body = transport.body;
            parked.wants_input = transport.wants_input;
            set_deadline(conn, &mut parked, shared.config.io_timeout);
            conn.park_request(parked);
            After::Park
        }
        Progress::Done(mut outcome) => {
            transport.end();
            let upgraded = transport.body.upgraded.take();
            shared.mark_busy(thread, false);
            slots.count_parked(false);
            let sent = serve::send_unsent(conn, shared);
            if !sent {
                outcome.reusable = false;
            }
            crate::stats::response(outcome.status, parked.started);
            log_access(&parked.environ, &buffers.call, outcome, parked.started);
            if let Some(upgraded) = upgraded {
                let ok = sent && outcome.status == 101;
                return match serve::take_over(upgraded, ok, &parked.environ) {
                    serve::Then::Upgrade(upgraded) => After::Upgrade(upgraded),
                    _ => After::Close,
                };
            }
            if outcome.reusable || conn.sending_file() {
                serve::serve(conn, shared, slots, scratch)
            } else {
                After::Close
            }
        }
    }
}
