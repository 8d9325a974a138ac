//! Upgraded connections (ABI 1.2): a connection an app took with `upgrade` (raw bytes) or
//! `websocket_accept` (messages, `ws/`) after its `101`, and that outlives the request.
//!
//! ```text
//!   call/next: upgrade ──▶ Upgraded (Starting; the app's calls queue output, reads pend)
//!   request ends, 101 sent ──▶ attach: the Conn moves in, slot Upgraded, epoll in+out (Open)
//!   epoll edge / ready queue ──▶ ready (any serving thread): flush, deadlines, on_event
//!   *_close (app) / client gone / --io-timeout / drain ──▶ socket closed, slot freed, release
//! ```
//!
//! Any thread may call the connection's host calls at any time: each takes this connection's
//! own lock for one non-blocking step at most and never calls into the app; "nothing now" is
//! `WS_PENDING`, and the call that answered it arms one `WS_EV_READABLE`/`WS_EV_WRITABLE` in the
//! same critical section, so an epoll edge that follows is seen by whichever thread takes it
//! (it needs the same lock to look). `on_event` runs only on serving threads, one at a time per
//! connection: an event that comes while it runs is kept (`missed`) and delivered after it
//! returns. A call on an app thread that needs the app told something (the client vanished, the
//! app's close needs its `release`) queues the connection for a serving thread instead.
//!
//! Lock order: this lock, then a slot's (`Slots::free_upgraded` runs with it held when the
//! connection ends); never the other way round, since a slot only clones the `Arc` and reads
//! `deadline_ms`. The
//! socket is dropped when the connection ends (`conn` becomes `None`), so a late call from an
//! app thread finds `WS_ERR_CLIENT_GONE`, never a descriptor reused by a newer connection.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use app_abi::raw::{WS_EV_CLOSED, WS_EV_GOING_AWAY, WS_EV_READABLE, WS_EV_WRITABLE};

use super::conn::Conn;
use super::slots::{Slots, Token};
use super::ws::boundary::FrameBoundary;
use super::ws::session::WsSession;
use super::{Config, Shared};
use crate::app::host_upgrade::ConnHandler;
pub(crate) use crate::app::upgraded::{Mode, Step, TakenConnection};
use crate::logging::UpgradeSeed;

mod stream;

/// Output an app may queue before the connection is attached (its 101 not yet sent): beyond it
/// a write pends until then.
const EARLY_OUTPUT_LIMIT: usize = 64 * 1024;

/// Input read ahead of the app (to notice a client that hangs up) stops at this much.
const READ_AHEAD_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// The request that upgraded is still running: no socket yet.
    Starting,
    /// The socket is here.
    Open,
    /// The socket is closed (or was never attached).
    Closed,
}

/// One upgraded connection; the app's handle holds an `Arc` of it (`app::upgraded::Handle`).
pub(crate) struct Upgraded {
    token: Token,
    slots: Arc<Slots>,
    handler: ConnHandler,
    io_timeout: Duration,
    /// Raw streams: TCP keep-alive after this long idle (`--ws-ping-interval`).
    keepalive: Option<Duration>,
    /// Itself, to queue for a serving thread from a host call.
    me: Weak<Upgraded>,
    state: Mutex<State>,
    /// When the sweep must look at it (milliseconds on [`clock`]); `u64::MAX`: never. Read
    /// without the lock.
    deadline_ms: AtomicU64,
    /// An epoll edge came since the last `ready` (input or room): a sign of life.
    edged: AtomicBool,
    /// An epoll edge came since the app's last read from the socket (raw mode): the kernel may
    /// hold input again (`stream_read` skips the syscall while it cannot).
    input_edge: AtomicBool,
    /// Its socket was closed (`end`): read without this connection's lock by `Slots::upgrade`,
    /// which must not point the slot to a connection that ended before it could.
    socket_closed: AtomicBool,
}

pub(super) struct State {
    pub(super) phase: Phase,
    pub(super) conn: Option<Box<Conn>>,
    /// Output accepted before the socket was attached (raw bytes, or frames in message mode).
    pub(super) early: Vec<u8>,
    /// Message mode: the RFC 6455 state (`ws/session.rs`).
    pub(super) ws: Option<Box<WsSession>>,
    /// The 101 said `Upgrade: websocket` (an app with its own WebSocket stack): the frames the
    /// app wrote, followed so the drain's close frame goes between two of them.
    out_frames: Option<FrameBoundary>,
    /// The server wrote its own close frame into a raw WebSocket stream: the app writes no more.
    goodbye_sent: bool,
    /// Events the app was promised (`WS_PENDING` answers).
    pub(super) armed: u32,
    /// Events owed unasked (`WS_EV_CLOSED`, `WS_EV_GOING_AWAY`).
    pub(super) owed: u32,
    /// Events that came while `on_event` ran.
    missed: u32,
    dispatching: bool,
    /// The app called `*_close`: the handle is gone.
    pub(super) app_closed: bool,
    released: bool,
    closed_told: bool,
    going_away_told: bool,
    /// The end was counted and logged.
    ended: bool,
    /// The client ended its side: reads report the end.
    client_ended: bool,
    /// Raw mode, plain TCP: the app's last read emptied the socket (it came up short, or found
    /// nothing) and no edge came since, so another would only find nothing.
    input_drained: bool,
    /// Since when output has waited for the client without progress.
    pub(super) output_since: Option<Instant>,
    /// When the socket is closed whatever remains unsent (after the app's close, the drain).
    pub(super) close_by: Option<Instant>,
    started: Instant,
    pub(super) counts: Counts,
    pub(super) close_code: Option<u16>,
    /// The access-log line at close (only with an access log).
    access: Option<Box<UpgradeSeed>>,
}

/// What went over the connection, for the access log and `--stats`.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct Counts {
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) messages_in: u64,
    pub(crate) messages_out: u64,
}

impl fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgraded")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// The clock `deadline_ms` counts on.
fn clock() -> Instant {
    static CLOCK: OnceLock<Instant> = OnceLock::new();
    *CLOCK.get_or_init(Instant::now)
}

fn millis(at: Instant) -> u64 {
    at.saturating_duration_since(clock()).as_millis() as u64
}

/// Whether a read of `len` bytes that gave `read` left the socket empty, so that another would
/// only find nothing until the next epoll edge: it read the socket itself (not input already
/// buffered) and came up short or found nothing. Never under TLS, whose session may hold
/// plaintext. (Raw mode's `stream_read` and message mode's reads both skip that empty read.)
pub(in crate::server) fn emptied_socket(
    conn: &Conn,
    from_socket: bool,
    len: usize,
    read: &std::io::Result<usize>,
) -> bool {
    from_socket
        && !conn.is_tls()
        && match read {
            Ok(n) => 0 < *n && *n < len,
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        }
}

fn fail_log(conn: &Conn, e: &std::io::Error) {
    log::debug!("{}: upgraded connection failed: {e}", conn.peer());
}

/// The app's host calls on its handle: byte-stream calls here (`stream.rs`), message calls in
/// `ws/`.
impl TakenConnection for Upgraded {
    fn read(&self, out: &mut [u8]) -> Step<usize> {
        Upgraded::read(self, out)
    }

    fn write(&self, data: &[u8]) -> Step<usize> {
        Upgraded::write(self, data)
    }

    fn close(&self) {
        Upgraded::close(self);
    }

    fn ws_recv(&self, message: &mut app_abi::raw::WsMessage) -> i32 {
        super::ws::recv(self, message)
    }

    fn ws_send(&self, kind: u32, data: &[u8]) -> i32 {
        super::ws::send(self, kind, data)
    }

    fn ws_close(&self, code: u16, reason: &[u8]) {
        super::ws::close(self, code, reason);
    }
}

impl Upgraded {
    /// A connection taken by the request running on `token`; attached once that request ends.
    pub(crate) fn new(
        token: Token,
        slots: Arc<Slots>,
        handler: ConnHandler,
        mode: Mode,
        config: &Config,
        access: Option<Box<UpgradeSeed>>,
    ) -> Arc<Upgraded> {
        let raw_websocket = matches!(mode, Mode::Raw { websocket: true });
        let ws =
            matches!(mode, Mode::WebSocket).then(|| Box::new(WsSession::new(&config.websocket)));
        crate::stats::upgrade_opened();
        Arc::new_cyclic(|me| Upgraded {
            token,
            slots,
            handler,
            io_timeout: config.io_timeout,
            keepalive: config.websocket.ping_interval.filter(|_| ws.is_none()),
            me: me.clone(),
            state: Mutex::new(State {
                phase: Phase::Starting,
                conn: None,
                early: Vec::new(),
                ws,
                out_frames: raw_websocket.then(FrameBoundary::default),
                goodbye_sent: false,
                // The first `on_event` comes once the connection is attached (after the call
                // that took it returned): "read and write may be tried now".
                armed: WS_EV_READABLE | WS_EV_WRITABLE,
                owed: 0,
                missed: 0,
                dispatching: false,
                app_closed: false,
                released: false,
                closed_told: false,
                going_away_told: false,
                ended: false,
                client_ended: false,
                input_drained: false,
                output_since: None,
                close_by: None,
                started: Instant::now(),
                counts: Counts::default(),
                close_code: None,
                access,
            }),
            deadline_ms: AtomicU64::new(u64::MAX),
            edged: AtomicBool::new(false),
            input_edge: AtomicBool::new(false),
            socket_closed: AtomicBool::new(false),
        })
    }

    /// Its socket was closed: the slot is no longer its to hold.
    pub(crate) fn socket_closed(&self) -> bool {
        self.socket_closed.load(Ordering::Acquire)
    }

    /// What the access-log line at close needs (copied when the request that upgraded ends).
    pub(crate) fn set_access(&self, seed: Option<Box<UpgradeSeed>>) {
        self.lock().access = seed;
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sweep's question, without the lock: is a deadline of this connection due at `now`?
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.deadline_ms.load(Ordering::Relaxed) <= millis(now)
    }

    /// An epoll edge for this connection (the slot table's note, no lock).
    pub(crate) fn edge(&self) {
        self.edged.store(true, Ordering::Relaxed);
        self.input_edge.store(true, Ordering::Release);
    }

    /// Whether an epoll edge came since the last look (message mode's reads skip the system
    /// call while none did: `ws/session.rs`). Taken under the connection's lock, before a read.
    pub(in crate::server) fn take_input_edge(&self) -> bool {
        self.input_edge.swap(false, Ordering::Acquire)
    }

    /// Recomputes `deadline_ms` from the state.
    pub(super) fn set_deadline(&self, st: &State) {
        let output = st.output_since.map(|t| t + self.io_timeout);
        let ws = st.ws.as_ref().and_then(|ws| ws.deadline());
        let deadline = [output, st.close_by, ws].into_iter().flatten().min();
        self.deadline_ms
            .store(deadline.map_or(u64::MAX, millis), Ordering::Relaxed);
    }

    /// The request that upgraded ended and its 101 went out (or waits in `conn`'s output): the
    /// socket is the connection's from now on. The caller makes the slot point here, then calls
    /// [`Upgraded::ready`].
    /// Returns the connection back if it cannot be attached (closed meanwhile, or its early
    /// output failed): the caller closes it, and the app hears `WS_EV_CLOSED`.
    pub(crate) fn attach(&self, mut conn: Box<Conn>) -> Option<Box<Conn>> {
        let mut st = self.lock();
        if st.phase != Phase::Starting {
            return Some(conn);
        }
        let early = std::mem::take(&mut st.early);
        if !early.is_empty() {
            if let Err(e) = conn.write_or_keep(&[&early]) {
                fail_log(&conn, &e);
                self.end(&mut st, true);
                drop(st);
                self.queue();
                return Some(conn);
            }
            st.counts.bytes_out += early.len() as u64;
        }
        if let Some(idle) = self.keepalive {
            if let Err(e) = conn.set_keepalive(idle) {
                // A unix socket has none: nothing to find there.
                log::debug!("{}: no TCP keep-alive: {e}", conn.peer());
            }
        }
        st.phase = Phase::Open;
        st.conn = Some(conn);
        None
    }

    /// The request that upgraded failed before its connection could be attached (the client
    /// left while the 101 was sent): the app is told `WS_EV_CLOSED` on a serving thread.
    pub(crate) fn abandon(&self) {
        let mut st = self.lock();
        self.end(&mut st, true);
        drop(st);
        self.queue();
    }

    /// Asks a serving thread to look at this connection ([`Upgraded::ready`]).
    pub(super) fn queue(&self) {
        if let Some(me) = self.me.upgrade() {
            self.slots.queue_upgraded(me);
        }
    }

    /// The drain began: `WS_EV_GOING_AWAY`, once (delivered by the caller's `ready`).
    pub(crate) fn going_away(&self) {
        let mut st = self.lock();
        if !st.going_away_told && !st.app_closed {
            st.going_away_told = true;
            st.owed |= WS_EV_GOING_AWAY;
        }
    }

    /// The drain's end (`--graceful-timeout`): a WebSocket stream gets close 1001, any other
    /// stream is closed; the socket goes once that is out, or after `grace`.
    pub(crate) fn shut_down(&self, grace: Duration) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let now = Instant::now();
        if let Some(ws) = st.ws.as_deref_mut() {
            ws.close(st.conn.as_deref_mut(), &mut st.early, 1001, "going away");
        } else if let (Some(frames), Some(conn)) = (&st.out_frames, st.conn.as_deref_mut()) {
            // The close frame (1001) the app's own WebSocket stack did not write, between two
            // of its frames; a stream stopped inside a frame is just closed at the grace's end.
            if frames.between_frames() && !st.goodbye_sent {
                let _ = conn.write_or_keep(&[&[0x88, 0x02, 0x03, 0xe9]]);
                st.goodbye_sent = true;
            }
        }
        st.close_code.get_or_insert(1001);
        // Other protocols have no goodbye of ours: they close at once.
        let by = if st.ws.is_some() || st.out_frames.is_some() {
            now + grace
        } else {
            now
        };
        st.close_by = Some(st.close_by.map_or(by, |t| t.min(by)));
        st.owed |= WS_EV_CLOSED;
        st.client_ended = true;
        self.set_deadline(st);
    }

    /// Closes the socket, frees the slot, counts and logs the end (once). With `failed`, the
    /// app is owed `WS_EV_CLOSED`.
    pub(super) fn end(&self, st: &mut State, failed: bool) {
        st.phase = Phase::Closed;
        if let Some(code) = st.ws.as_ref().and_then(|ws| ws.close_code()) {
            st.close_code.get_or_insert(code);
        }
        if failed {
            st.owed |= WS_EV_CLOSED;
            st.close_code.get_or_insert(1006);
        }
        if let Some(conn) = st.conn.take() {
            // Before the slot is looked at: an `upgrade` that has not pointed the slot here yet
            // sees it under the slot's lock and frees the slot itself.
            self.socket_closed.store(true, Ordering::Release);
            // Lock order: this connection's lock, then its slot's (never the reverse).
            self.slots.free_upgraded(self.token, self);
            drop(conn);
        }
        self.deadline_ms.store(u64::MAX, Ordering::Relaxed);
        if let Some(ws) = st.ws.as_deref_mut() {
            ws.forget_received_if(st.app_closed);
        }
        if !st.ended {
            st.ended = true;
            crate::stats::upgrade_closed();
            if let Some(seed) = st.access.take() {
                seed.closed(
                    st.started.elapsed(),
                    st.counts.bytes_out,
                    st.close_code.unwrap_or(1000),
                );
            }
        }
    }

    /// A serving thread's turn (an epoll edge, a queued wake, a due deadline): flush output,
    /// apply deadlines, notice a client that left, then run the app's `on_event` for what is
    /// due, and release the app's context once it closed.
    pub(crate) fn ready(&self, shared: &Shared, thread: usize) {
        // A bug of ours must not take a serving thread down with it.
        let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.turn(shared, thread);
        }));
        if turn.is_err() {
            log::error!("internal error: panic while serving an upgraded connection; closing it");
            let mut st = self.lock();
            self.end(&mut st, true);
        }
    }

    fn turn(&self, shared: &Shared, thread: usize) {
        let due = {
            let mut st = self.lock();
            if st.phase == Phase::Starting {
                // Not attached: the request that upgraded still runs; `attach` comes first.
                return;
            }
            self.step(&mut st);
            let mut due = std::mem::take(&mut st.owed);
            if due & WS_EV_CLOSED != 0 {
                if st.closed_told {
                    due &= !WS_EV_CLOSED;
                }
                st.closed_told = true;
            }
            if st.phase == Phase::Closed {
                // Whatever was asked, the answer now is the end.
                due |= st.armed;
                st.armed = 0;
            } else {
                let blocked = st.conn.as_ref().is_some_and(|c| c.has_unsent())
                    || st.ws.as_ref().is_some_and(|ws| ws.output_waits());
                let ready = st.armed & (WS_EV_READABLE | if blocked { 0 } else { WS_EV_WRITABLE });
                due |= ready;
                st.armed &= !ready;
            }
            self.set_deadline(&st);
            if st.app_closed {
                0
            } else {
                due
            }
        };
        if due != 0 {
            self.dispatch(due, shared, thread);
        }
        self.release_if_done();
    }

    /// The connection's own work under its lock: output, deadlines, a client that left.
    fn step(&self, st: &mut State) {
        let now = Instant::now();
        let Some(conn) = st.conn.as_deref_mut() else {
            return;
        };
        let mut failed = false;
        if conn.has_unsent() {
            if let Err(e) = conn.flush_unsent() {
                fail_log(conn, &e);
                failed = true;
            }
        }
        let edged = self.edged.swap(false, Ordering::Relaxed);
        if let Some(ws) = st.ws.as_deref_mut() {
            if self.take_input_edge() {
                ws.input_may_come();
            }
            failed |= !ws.flush(conn);
            if edged && st.armed & WS_EV_READABLE == 0 {
                // Input (or room) the app has not asked about: the client lives, even if its
                // pong waits behind messages the app has not read yet.
                ws.alive(now);
            }
            failed |= !ws.tick(conn, now);
        }
        let ws_over = st.ws.as_ref().is_some_and(|ws| ws.is_over());
        let ws_failed = st.ws.as_ref().is_some_and(|ws| ws.failed());
        let waiting = conn.has_unsent() || st.ws.as_ref().is_some_and(|ws| ws.output_waits());
        // A write that pended (armed) waits for the client as much as unsent bytes do.
        if !waiting && st.armed & WS_EV_WRITABLE == 0 {
            st.output_since = None;
        } else if st.output_since.is_some_and(|t| now >= t + self.io_timeout) {
            log::debug!("{}: client read nothing within --io-timeout", conn.peer());
            failed = true;
        }
        if st.close_by.is_some_and(|t| now >= t) {
            failed = !st.app_closed || waiting;
        } else if st.ws.is_some() {
            if ws_over && !waiting {
                // The closing handshake is complete, or the session failed: the socket goes;
                // an app that has not closed yet hears it.
                if !st.app_closed {
                    st.owed |= WS_EV_CLOSED;
                }
                return self.end(st, failed || ws_failed);
            }
        } else if !st.app_closed && st.armed & WS_EV_READABLE == 0 && !st.client_ended {
            // Input the app has not asked for: read a little ahead, to notice a client that
            // hung up (the app then reads the rest, and the end).
            conn.mark_readable();
            if !conn.poll_input(READ_AHEAD_LIMIT) {
                st.client_ended = true;
                st.owed |= WS_EV_READABLE;
            }
        }
        let app_done = st.app_closed && !waiting && st.ws.as_ref().is_none_or(|ws| ws.is_over());
        if failed || app_done || st.close_by.is_some_and(|t| now >= t) {
            self.end(st, failed);
        }
    }

    /// Runs the app's `on_event` for `events`, then for what came meanwhile, one at a time.
    fn dispatch(&self, mut events: u32, shared: &Shared, thread: usize) {
        {
            let mut st = self.lock();
            if st.app_closed {
                return;
            }
            if st.dispatching {
                st.missed |= events;
                return;
            }
            st.dispatching = true;
        }
        loop {
            {
                let _serialised = shared.app_lock.as_ref().map(|lock| lock.lock());
                // --timeout applies to on_event as to call.
                shared.mark_busy(thread, true);
                self.handler.on_event(events);
                shared.mark_idle(thread);
            }
            let mut st = self.lock();
            events = std::mem::take(&mut st.missed);
            if events == 0 || st.app_closed {
                st.dispatching = false;
                break;
            }
        }
    }

    /// The app's `release(ctx)`, once, after its close and when no `on_event` runs.
    fn release_if_done(&self) {
        {
            let mut st = self.lock();
            if !st.app_closed || st.dispatching || st.released || st.phase == Phase::Starting {
                return;
            }
            st.released = true;
        }
        self.handler.release();
    }

    /// `stream_close`: the handle is gone; what was accepted is still sent (up to
    /// `--io-timeout`), then the socket closes, and a serving thread releases the app's context
    /// once no `on_event` runs (never inside the app's own call).
    pub(crate) fn close(&self) {
        // On a WebSocket's handle, a normal close (1000) rather than a cut.
        self.close_with(|st| {
            if let Some(ws) = st.ws.as_deref_mut() {
                ws.close(st.conn.as_deref_mut(), &mut st.early, 1000, "");
            }
        });
    }

    /// The app's close; `goodbye` says it on the wire first (message mode's close frame).
    pub(super) fn close_with(&self, goodbye: impl FnOnce(&mut State)) {
        {
            let mut st = self.lock();
            if st.app_closed {
                return;
            }
            st.app_closed = true;
            st.armed = 0;
            goodbye(&mut st);
            let now = Instant::now();
            st.close_by = Some(
                st.close_by
                    .map_or(now + self.io_timeout, |t| t.min(now + self.io_timeout)),
            );
            let flushed = !st.conn.as_ref().is_some_and(|c| c.has_unsent())
                && st
                    .ws
                    .as_ref()
                    .is_none_or(|ws| ws.is_over() && !ws.output_waits());
            if st.phase == Phase::Open && flushed {
                self.end(&mut st, false);
            }
            self.set_deadline(&st);
        }
        self.queue();
    }
}
