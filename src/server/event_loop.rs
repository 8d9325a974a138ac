//! The event loop: accepts, reads request heads, parks idle connections, sweeps timeouts.
//!
//! Every connection has a slot. A slot is `Idle` while the loop owns the connection (waiting for
//! input) and `Busy` while an app thread has it. Sockets are registered once, edge-triggered;
//! an event for a busy connection only sets `pending`, which the app thread sees when it tries to
//! park the connection — so no readiness is ever lost and no `epoll_ctl` is needed per request.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use super::conn::{Conn, Filled};
use super::pool::Pool;
use super::{Shared, Shutdown};
use crate::http::response::encode_error;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;

/// While draining, how long a connection whose last response promised keep-alive (it began
/// before the drain) waits for the request its client may already be sending.
const DRAIN_LINGER: Duration = Duration::from_secs(1);

/// How often parked connections are checked against their deadlines.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

enum Slot {
    Free,
    Idle(Box<Conn>),
    Busy { pending: bool },
}

/// Every connection's slot, indexed by `token - FIRST_CONN`.
pub(crate) struct Slots {
    inner: Mutex<SlotTable>,
    /// Connections are registered with the poller the first time they are parked: one served
    /// and closed without ever waiting (`Connection: close`) costs no `epoll_ctl`.
    registry: Registry,
}

#[derive(Default)]
struct SlotTable {
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Slots that are not free: the connections still open.
    open: usize,
}

impl Slots {
    fn new(registry: Registry) -> Slots {
        Slots {
            inner: Mutex::default(),
            registry,
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotTable> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Give a connection back to the loop. Returns it if input arrived meanwhile, so the caller
    /// keeps serving it.
    pub(crate) fn park(&self, mut conn: Box<Conn>, shared: &Shared) -> Option<Box<Conn>> {
        let mut table = self.lock();
        let index = conn.token.0 - FIRST_CONN;
        match &mut table.slots[index] {
            Slot::Busy { pending } if *pending => {
                *pending = false;
                conn.drained = false;
                Some(conn)
            }
            slot => {
                let config = &shared.config;
                let now = shared.coarse_now();
                conn.deadline = if conn.has_partial_request() || !conn.served_any {
                    *conn.head_since.get_or_insert(now) + config.header_timeout
                } else {
                    now + config.keep_alive
                };
                if shared.draining() {
                    // Parked after the drain began (its response promised keep-alive before the
                    // drain): a request the client sends right behind that response is still
                    // answered (with `Connection: close`), but an idle client cannot hold the
                    // process for a whole keep-alive period.
                    let window = config
                        .keep_alive
                        .min(config.graceful_timeout)
                        .min(DRAIN_LINGER);
                    conn.deadline = conn.deadline.min(now + window);
                }
                if !conn.registered {
                    // Edge-triggered registration reports input that is already there, so
                    // nothing that arrived before this point is missed.
                    let token = conn.token;
                    if let Err(e) =
                        self.registry
                            .register(&mut conn.stream, token, Interest::READABLE)
                    {
                        log::warn!("{}: cannot watch the connection: {e}", conn.peer);
                        *slot = Slot::Free;
                        table.free.push(index);
                        table.open -= 1;
                        return None;
                    }
                    conn.registered = true;
                }
                *slot = Slot::Idle(conn);
                None
            }
        }
    }

    /// Forget a connection an app thread is done with; dropping it closes the socket (which also
    /// removes it from epoll).
    pub(crate) fn close(&self, conn: Box<Conn>) {
        let index = conn.token.0 - FIRST_CONN;
        let mut table = self.lock();
        table.slots[index] = Slot::Free;
        table.free.push(index);
        table.open -= 1;
        drop(table);
        drop(conn);
    }

    /// A slot for a new connection, already marked busy: the caller owns the connection.
    fn reserve(&self) -> Token {
        let mut table = self.lock();
        let index = match table.free.pop() {
            Some(index) => index,
            None => {
                table.slots.push(Slot::Free);
                table.slots.len() - 1
            }
        };
        table.slots[index] = Slot::Busy { pending: false };
        table.open += 1;
        Token(index + FIRST_CONN)
    }

    /// Take an idle connection for work, or note that input arrived for a busy one.
    fn take(&self, token: Token) -> Option<Box<Conn>> {
        let mut table = self.lock();
        let index = token.0.checked_sub(FIRST_CONN)?;
        let slot = table.slots.get_mut(index)?;
        match std::mem::replace(slot, Slot::Busy { pending: false }) {
            Slot::Idle(conn) => Some(conn),
            Slot::Busy { .. } => {
                *slot = Slot::Busy { pending: true };
                None
            }
            Slot::Free => {
                *slot = Slot::Free;
                None
            }
        }
    }

    /// Parked connections past their deadline, removed from the table.
    #[allow(clippy::vec_box)] // the boxes are the connections' own; they move on unchanged
    fn expired(&self, now: Instant) -> Vec<Box<Conn>> {
        let mut table = self.lock();
        let SlotTable { slots, free, open } = &mut *table;
        let mut gone = Vec::new();
        for (index, slot) in slots.iter_mut().enumerate() {
            if matches!(slot, Slot::Idle(conn) if conn.deadline <= now) {
                if let Slot::Idle(conn) = std::mem::replace(slot, Slot::Free) {
                    gone.push(conn);
                    free.push(index);
                    *open -= 1;
                }
            }
        }
        gone
    }

    /// While draining, a parked connection waits at most `limit` more for its next request.
    fn shorten_deadlines(&self, limit: Instant) {
        for slot in self.lock().slots.iter_mut() {
            if let Slot::Idle(conn) = slot {
                conn.deadline = conn.deadline.min(limit);
            }
        }
    }

    fn open(&self) -> usize {
        self.lock().open
    }
}

pub(crate) fn run(
    listener: StdListener,
    shared: Arc<Shared>,
    shutdown: Arc<Shutdown>,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let bound = listener
        .local_addr()
        .ok()
        .filter(|addr| !addr.ip().is_unspecified());
    let mut listener = TcpListener::from_std(listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    if shutdown.waker.set(waker).is_err() {
        log::warn!("this shutdown handle already serves another loop");
    }
    let slots = Arc::new(Slots::new(poll.registry().try_clone()?));
    let pool = Pool::start(&shared, &slots)?;
    let mut events = Events::with_capacity(1024);
    let mut last_sweep = Instant::now();

    let mut listener = Some(listener);
    let mut stop_by = None;
    loop {
        if stop_by.is_none() && shutdown.is_requested() {
            stop_by = Some(begin_drain(&mut listener, poll.registry(), &shared, &slots));
        }
        if let Some(deadline) = stop_by {
            if slots.open() == 0 {
                break;
            }
            if Instant::now() >= deadline {
                // Threads stuck in the app cannot be joined; the process exit ends them.
                log::warn!(
                    "graceful timeout: {} connection(s) still open; stopping anyway",
                    slots.open()
                );
                return Ok(());
            }
        }
        if let Err(e) = poll.poll(&mut events, Some(SWEEP_EVERY)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        shared.tick();
        for event in events.iter() {
            match event.token() {
                LISTENER => {
                    // A stop asked while we polled: leave new connections in the (shared)
                    // backlog for the workers that keep serving; `begin_drain` runs next turn.
                    if let Some(listener) = listener.as_ref().filter(|_| !shutdown.is_requested()) {
                        accept_all(listener, bound, &slots, &shared, &pool);
                    }
                }
                WAKER => {}
                token => {
                    if let Some(conn) = slots.take(token) {
                        advance(conn, &slots, &shared, &pool);
                    }
                }
            }
        }
        let now = shared.coarse_now();
        if now.duration_since(last_sweep) >= SWEEP_EVERY {
            last_sweep = now;
            if let Some(running) = shared.overdue() {
                harakiri(running);
            }
            for conn in slots.expired(now) {
                let mut conn = conn;
                time_out(&mut conn);
            }
        }
    }
    pool.finish();
    Ok(())
}

/// Stop accepting and let every open connection end on its own: a request in flight finishes
/// (its response says `Connection: close`), and a parked keep-alive connection gets one more
/// keep-alive period, so a request the client already sent on it is answered instead of being
/// cut off — the race that loses requests when servers reload. Returns when to give up.
fn begin_drain(
    listener: &mut Option<TcpListener>,
    registry: &Registry,
    shared: &Shared,
    slots: &Slots,
) -> Instant {
    log::info!("draining: no new connections; finishing in-flight requests");
    if let Some(mut listener) = listener.take() {
        if let Err(e) = registry.deregister(&mut listener) {
            log::debug!("deregister listener: {e}");
        }
    }
    shared
        .draining
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let now = Instant::now();
    slots.shorten_deadlines(now + shared.config.keep_alive.min(shared.config.graceful_timeout));
    now + shared.config.graceful_timeout
}

fn accept_all(
    listener: &TcpListener,
    bound: Option<SocketAddr>,
    slots: &Slots,
    shared: &Shared,
    pool: &Pool,
) {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                // Responses leave in as few writes as we can make them; Nagle would only delay
                // the last segment of each (and every chunk of a stream).
                if let Err(e) = stream.set_nodelay(true) {
                    log::debug!("{peer}: TCP_NODELAY: {e}");
                }
                // A listener bound to one address gives every connection that local address;
                // only a wildcard bind needs getsockname per connection.
                let local = match bound.map_or_else(|| stream.local_addr(), Ok) {
                    Ok(local) => local,
                    Err(e) => {
                        log::debug!("{peer}: local_addr: {e}");
                        continue;
                    }
                };
                let token = slots.reserve();
                let now = shared.coarse_now();
                let conn = Box::new(Conn::new(
                    stream,
                    token,
                    peer,
                    local,
                    now,
                    shared.config.header_timeout,
                ));
                // Most clients send their request right behind the handshake: read it now
                // instead of waiting for the readiness event.
                advance(conn, slots, shared, pool);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // EMFILE/ENFILE: leave the connection in the backlog; it is retried on the next
                // wake-up rather than spinning here.
                log::warn!(
                    "accept failed: {e}; raise the open-files limit (ulimit -n) if this repeats"
                );
                return;
            }
        }
    }
}

/// Read what the socket holds; dispatch a whole head to the pool, else park.
fn advance(mut conn: Box<Conn>, slots: &Slots, shared: &Shared, pool: &Pool) {
    match conn.fill(shared.config.limits.max_head) {
        Filled::Ready => pool.submit(conn),
        Filled::Waiting => {
            if let Some(conn) = slots.park(conn, shared) {
                advance(conn, slots, shared, pool);
            }
        }
        Filled::Closed => slots.close(conn),
    }
}

/// A parked connection outlived its deadline: a partial head gets a 408 (RFC 9110 §15.5.9), an
/// idle keep-alive connection is just closed.
fn time_out(conn: &mut Conn) {
    if conn.has_partial_request() {
        log::info!(target: "access", "{} \"-\" 408 0 header timeout", conn.peer.ip());
        let mut out = Vec::new();
        encode_error(
            &mut out,
            408,
            httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes(),
        );
        let _ = io::Write::write(&mut conn.stream, &out);
    } else {
        log::debug!("{}: keep-alive timeout", conn.peer);
    }
}

/// Exit status of a worker that killed itself over a request running past --timeout.
pub(crate) const HARAKIRI_EXIT: i32 = 70;

/// A request has run past --timeout: the app is stuck, and only replacing the process frees
/// its thread (uWSGI's harakiri, gunicorn's worker timeout). `_exit` skips destructors and
/// atexit handlers, which could block on whatever the stuck app holds.
fn harakiri(running: Duration) -> ! {
    log::error!(
        "a request has been running for {:.1}s, past --timeout; exiting so the master replaces this worker",
        running.as_secs_f64()
    );
    // SAFETY: _exit ends the process at once; nothing of ours runs afterwards.
    unsafe { libc::_exit(HARAKIRI_EXIT) }
}
