//! Every connection's slot, shared by the serving threads.
//!
//! A slot is `Idle` while the connection waits on the epoll instance and `Busy` while a thread
//! serves it. A socket is registered (edge-triggered) the first time it is parked, and stays
//! registered until it closes; an event for a busy connection only sets `pending`, which the
//! serving thread sees when it tries to park the connection — so no readiness is ever lost and
//! no `epoll_ctl` is needed per request. A connection's token is its slot index plus
//! `FIRST_CONN`.
//!
//! Deferred requests (ABI 1.1): an `Idle` connection may hold a parked request (`Phase::Parked`),
//! which waits both on epoll (its client) and on its wakers. A wake ([`Slots::wake`], any thread)
//! moves it from its slot to the ready queue and raises the eventfd, whose event a serving
//! thread answers by taking one ready connection ([`Slots::pop_ready`]). The eventfd is written
//! only when no edge raised for the queues is still unanswered (`Slots::signal`): a burst of
//! wakes costs one write, and each further one a thread leaves behind for another one more. A wake for a request
//! that is running only marks its busy slot `woken`, which `park` sees — so a wake during `next`
//! is never lost. Wakes name a request by a number given out when its first waker is made
//! (`request_id`), so a wake that comes after the request ended finds no match and does nothing.
//! The coordinator cancels parked requests the same way (`--timeout`, the end of a drain): it
//! marks them and queues them, and a serving thread calls the app's `close`.

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::conn::Conn;
use super::upgraded::Upgraded;
use super::{Config, Shared};
use crate::app::call::Cancel;
use crate::sys::epoll::{Epoll, Waker};

/// A source's identity on the epoll instance (the event's data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token(pub(crate) usize);

impl Token {
    pub(crate) fn from_event(data: u64) -> Token {
        Token(data as usize)
    }

    pub(crate) fn event_data(self) -> u64 {
        self.0 as u64
    }
}

/// Tokens below this are the listener's and the waker's.
pub(crate) const FIRST_CONN: usize = 2;

enum Slot {
    Free,
    Idle(Box<Conn>),
    /// A thread owns the connection (or it waits in the ready queue). `pending`: input arrived
    /// meanwhile; `woken`: a waker of its request `request` (0: none made) was woken meanwhile.
    Busy {
        pending: bool,
        woken: bool,
        request: u64,
    },
    /// An upgraded connection (ABI 1.2): never taken, any thread may use it; events go to
    /// `Upgraded::ready`.
    Upgraded(Arc<Upgraded>),
}

impl Slot {
    /// Takes an idle connection out for a thread to serve, leaving the slot busy with its parked
    /// request's number (0: none), so a wake while it runs is noted.
    fn take_idle(&mut self) -> Option<Box<Conn>> {
        let Slot::Idle(conn) = self else {
            return None;
        };
        let request = conn.parked_request().unwrap_or(0);
        let busy = Slot::Busy {
            pending: false,
            woken: false,
            request,
        };
        match std::mem::replace(self, busy) {
            Slot::Idle(conn) => Some(conn),
            _ => unreachable!("matched Idle above"),
        }
    }
}

/// What an event's token names.
pub(crate) enum Taken {
    /// A connection to serve (it is the thread's now).
    Conn(Box<Conn>),
    /// An upgraded connection to look at (`Upgraded::ready`).
    Upgraded(Arc<Upgraded>),
    /// Nothing to do here (busy elsewhere, or gone).
    Nothing,
}

/// Work queued for the next free serving thread.
pub(crate) enum Ready {
    Conn(Box<Conn>),
    Upgraded(Arc<Upgraded>),
}

const BUSY: Slot = Slot::Busy {
    pending: false,
    woken: false,
    request: 0,
};

/// Every connection's slot, indexed by `token - FIRST_CONN`, and the deferred requests ready to
/// run again.
pub(crate) struct Slots {
    inner: Mutex<SlotTable>,
    /// Raised when a connection is queued ready (and to stop the threads): registered with the
    /// serving threads' epoll instance under the `WAKER` token.
    waker: Waker,
}

#[derive(Default)]
struct SlotTable {
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Slots that are not free: the connections still open.
    open: usize,
    /// Connections for the next free thread: a parked request woken or cancelled, or an idle
    /// connection whose event was passed on (`pass_on`).
    ready: VecDeque<Box<Conn>>,
    /// Upgraded connections a serving thread must look at (an app thread's call, a deadline).
    ready_upgraded: VecDeque<Arc<Upgraded>>,
    /// Parked requests (in `Idle` slots or in `ready`).
    parked: usize,
    /// The last request number `request_id` gave out.
    last_request: u64,
    /// An eventfd edge was raised for the ready queues that no thread has answered yet
    /// (`pop_ready` clears it): while it is set, queueing more raises no other (see `signal`).
    signalled: bool,
}

impl Slots {
    pub(crate) fn new(waker: Waker) -> Slots {
        Slots {
            inner: Mutex::default(),
            waker,
        }
    }

    /// The eventfd the serving threads wait on besides their sockets.
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Wake one thread waiting in `epoll_wait` (the waker is edge-triggered).
    pub(crate) fn wake_a_thread(&self) {
        if let Err(e) = self.waker.wake() {
            // Threads still look at the ready queue and the stop flag within SWEEP_EVERY.
            log::warn!("cannot wake the serving threads: {e}");
        }
    }

    /// The number wakes of the running request on `token` name it by (given out on first use).
    pub(crate) fn request_id(&self, token: Token) -> u64 {
        let mut table = self.lock();
        let SlotTable {
            slots,
            last_request,
            ..
        } = &mut *table;
        match slots.get_mut(token.0 - FIRST_CONN) {
            Some(Slot::Busy { request, .. }) => {
                if *request == 0 {
                    *last_request += 1;
                    *request = *last_request;
                }
                *request
            }
            _ => 0,
        }
    }

    /// The running request on `token` ended: wakes naming it do nothing from now on.
    pub(crate) fn end_request(&self, token: Token) {
        if let Some(Slot::Busy { request, woken, .. }) =
            self.lock().slots.get_mut(token.0 - FIRST_CONN)
        {
            *request = 0;
            *woken = false;
        }
    }

    /// A waker of request `request` on `token` was woken (any thread): queue it if it is parked,
    /// note it if it runs, ignore it if it ended.
    pub(crate) fn wake(&self, token: Token, request: u64) {
        let mut table = self.lock();
        if let Some(conn) = Self::woken(&mut table, token, request) {
            table.ready.push_back(conn);
            self.signal(table);
        }
    }

    /// [`Slots::wake`] for a wake the calling serving thread answers itself
    /// (`waker_wake_here`): the parked connection is handed to it instead of queued, and no
    /// other thread is woken.
    pub(crate) fn take_woken(&self, token: Token, request: u64) -> Option<Box<Conn>> {
        Self::woken(&mut self.lock(), token, request)
    }

    /// A wake of `request` on `token`: its connection, taken out of its slot (left busy) if the
    /// request is parked; a running one is marked woken.
    fn woken(table: &mut SlotTable, token: Token, request: u64) -> Option<Box<Conn>> {
        let slot = table.slots.get_mut(token.0 - FIRST_CONN)?;
        match slot {
            Slot::Idle(conn) if conn.parked_request() == Some(request) => {
                let Some(mut conn) = slot.take_idle() else {
                    unreachable!("matched Idle above")
                };
                conn.mark_woken();
                Some(conn)
            }
            Slot::Busy {
                woken,
                request: running,
                ..
            } if *running == request => {
                *woken = true;
                None
            }
            _ => None,
        }
    }

    /// The next ready connection (a woken or cancelled parked request, or a passed-on event), or
    /// upgraded connection to look at; if more wait, another thread is woken for them.
    pub(crate) fn pop_ready(&self) -> Option<Ready> {
        let mut table = self.lock();
        // This thread answers the edge (whichever source raised it) and looks at the queues
        // now, under the lock: what is queued from here on needs an edge of its own.
        table.signalled = false;
        let ready = match table.ready.pop_front() {
            Some(conn) => Ready::Conn(conn),
            None => Ready::Upgraded(table.ready_upgraded.pop_front()?),
        };
        if !table.ready.is_empty() || !table.ready_upgraded.is_empty() {
            self.signal(table);
        }
        Some(ready)
    }

    /// Something was just queued in `table` (whose lock the caller held while queueing): make
    /// sure a serving thread will call `pop_ready`, writing the eventfd only if no edge raised
    /// for the queues is still unanswered. Without this, a burst of wakes (an asyncio loop
    /// finishing many requests in one turn) wrote the eventfd once per wake and `pop_ready`
    /// once more per request left behind.
    ///
    /// No wake-up is lost: `signalled` is only read and written under the table's lock, and
    /// `pop_ready` clears it in the same critical section in which it looks at the queues. So
    /// a queueing that finds it set comes before that look (which sees what it queued, and
    /// `pop_ready` raises a new edge if anything is left for another thread), and every
    /// WAKER event leads to a `pop_ready` (`event_loop::handle`, also from the backlog; a
    /// passed-on WAKER event is raised again). The edge itself is written after the lock is
    /// released: a queueing that comes in between finds `signalled` set and relies on this
    /// write, which follows; a thread that takes the item before it (woken by another source
    /// of edges: HTTP/2 jobs, a stop) only makes that edge find an empty queue.
    fn signal(&self, mut table: MutexGuard<'_, SlotTable>) {
        let raise = !std::mem::replace(&mut table.signalled, true);
        drop(table);
        if raise {
            if let Err(e) = self.waker.wake() {
                log::warn!("cannot wake the serving threads: {e}");
                // Let the next queueing try again.
                self.lock().signalled = false;
            }
        }
    }

    /// Queue an upgraded connection for a serving thread (any thread).
    pub(crate) fn queue_upgraded(&self, upgraded: Arc<Upgraded>) {
        let mut table = self.lock();
        table.ready_upgraded.push_back(upgraded);
        self.signal(table);
    }

    /// The request on `conn` upgraded: the connection becomes `upgraded`'s, watched for input
    /// and room to send from now on (one `epoll_ctl`, never another: edges do the rest). The
    /// caller then calls `Upgraded::ready`, which also serves any event that came meanwhile.
    pub(crate) fn upgrade(&self, mut conn: Box<Conn>, upgraded: &Arc<Upgraded>, epoll: &Epoll) {
        let index = conn.token().0 - FIRST_CONN;
        let token = conn.token().event_data();
        let add = !conn.is_registered();
        let watched = epoll.watch(conn.stream_mut().as_fd(), token, add, true);
        if let Err(e) = watched {
            log::warn!("{}: cannot watch the upgraded connection: {e}", conn.peer());
            upgraded.abandon();
            return self.close(conn);
        }
        conn.mark_registered();
        conn.mark_write_interest();
        // Before the slot points to it: an event now is `pending` on the busy slot, and the
        // caller's `ready` serves it.
        if let Some(conn) = upgraded.attach(conn) {
            return self.close(conn);
        }
        self.lock().slots[index] = Slot::Upgraded(Arc::clone(upgraded));
    }

    /// The upgraded connection `upgraded` closed its socket: its slot is free. (Called with the
    /// connection's own lock held: lock order connection, then table.)
    pub(crate) fn free_upgraded(&self, token: Token, upgraded: &Upgraded) {
        let mut table = self.lock();
        let index = token.0 - FIRST_CONN;
        let ours = match table.slots.get(index) {
            Some(Slot::Upgraded(held)) => std::ptr::eq(Arc::as_ptr(held), upgraded),
            // Closed before it was attached: the slot is still the request's.
            Some(Slot::Busy { .. }) => false,
            _ => false,
        };
        if ours {
            // The `Arc` held by the slot drops here, not the last one (the caller holds one).
            table.slots[index] = Slot::Free;
            table.free.push(index);
            table.open -= 1;
        }
    }

    /// Every upgraded connection (for the drain).
    pub(crate) fn upgraded(&self) -> Vec<Arc<Upgraded>> {
        self.lock()
            .slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Upgraded(upgraded) => Some(Arc::clone(upgraded)),
                _ => None,
            })
            .collect()
    }

    /// Queue every parked request for `cancel` whose connection's deadline is before `by`
    /// (every one, with `None`).
    pub(crate) fn cancel_parked(&self, cancel: Cancel, by: Option<Instant>) {
        let mut table = self.lock();
        let SlotTable { slots, ready, .. } = &mut *table;
        let mut queued = false;
        for slot in slots.iter_mut() {
            let due = matches!(slot, Slot::Idle(conn)
                if conn.parked_request().is_some() && by.is_none_or(|by| conn.deadline() <= by));
            if due {
                let Slot::Idle(mut conn) = std::mem::replace(slot, BUSY) else {
                    unreachable!("matched Idle above")
                };
                conn.cancel_parked(cancel);
                ready.push_back(conn);
                queued = true;
            }
        }
        if queued {
            self.signal(table);
        }
    }

    /// Parked requests (waiting or queued), for the drain.
    pub(crate) fn parked(&self) -> usize {
        self.lock().parked
    }

    /// A request parks (`true`) or ends after having parked (`false`).
    pub(crate) fn count_parked(&self, parked: bool) {
        let mut table = self.lock();
        if parked {
            table.parked += 1;
        } else {
            table.parked = table.parked.saturating_sub(1);
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotTable> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Give a connection back to `epoll`, registering it there if this is its first park (one
    /// served and closed without ever waiting, `Connection: close`, costs no `epoll_ctl`).
    /// Returns it if input arrived meanwhile, so the caller keeps serving it.
    ///
    /// The registration is made before the table's lock is taken: no system call is made under
    /// it. The slot is still busy then, so an event the registration reports (edge-triggered,
    /// it reports input that is already there) only marks it pending, which the look at the
    /// slot below sees: nothing that arrived before the connection is idle is missed.
    pub(crate) fn park(
        &self,
        mut conn: Box<Conn>,
        shared: &Shared,
        epoll: &Epoll,
    ) -> Option<Box<Conn>> {
        if conn.parked_request().is_none() {
            conn.set_parked_deadline(shared.coarse_now(), &shared.config, shared.draining());
        }
        // A deferred request's output that waits for its client: watch for room to send too
        // (from now on; a registration that asks for it reports room that is already there, so
        // none is missed).
        let add_write = conn.has_unsent() && !conn.write_interest();
        if !conn.is_registered() || add_write {
            let token = conn.token().event_data();
            let add = !conn.is_registered();
            let write = conn.has_unsent() || conn.write_interest();
            let watched = epoll.watch(conn.stream_mut().as_fd(), token, add, write);
            if let Err(e) = watched {
                log::warn!("{}: cannot watch the connection: {e}", conn.peer());
                if conn.parked_request().is_some() {
                    // The app still owes its request a close: run it now, then close.
                    conn.cancel_parked(Cancel::ClientGone);
                    return Some(conn);
                }
                self.close(conn);
                return None;
            }
            conn.mark_registered();
            if write {
                conn.mark_write_interest();
            }
        }
        let mut table = self.lock();
        let index = conn.token().0 - FIRST_CONN;
        match &mut table.slots[index] {
            Slot::Busy { pending, .. } if *pending => {
                *pending = false;
                conn.mark_readable();
                Some(conn)
            }
            Slot::Busy { woken, .. } if *woken && conn.parked_request().is_some() => {
                // Woken while its `next` ran: due again, but behind what already waits (an app
                // that wakes itself from `next` to yield must not starve other connections).
                *woken = false;
                conn.mark_woken();
                table.ready.push_back(conn);
                self.signal(table);
                None
            }
            slot => {
                *slot = Slot::Idle(conn);
                None
            }
        }
    }

    /// Forget a connection a serving thread is done with; dropping it closes the socket (which also
    /// removes it from epoll).
    pub(crate) fn close(&self, conn: Box<Conn>) {
        self.release(conn.token());
        drop(conn);
    }

    /// Frees the slot of `token`, whose connection its owner is done with (closed, or an
    /// HTTP/2 connection handed over with its slot that has ended).
    pub(crate) fn release(&self, token: Token) {
        let index = token.0 - FIRST_CONN;
        let mut table = self.lock();
        table.slots[index] = Slot::Free;
        table.free.push(index);
        table.open -= 1;
    }

    /// A slot for a new connection, already marked busy: the caller owns the connection.
    pub(crate) fn reserve(&self) -> Token {
        let mut table = self.lock();
        let index = match table.free.pop() {
            Some(index) => index,
            None => {
                table.slots.push(Slot::Free);
                table.slots.len() - 1
            }
        };
        table.slots[index] = BUSY;
        table.open += 1;
        Token(index + FIRST_CONN)
    }

    /// Take an idle connection for work, or note that input arrived for a busy one.
    pub(crate) fn take(&self, token: Token) -> Taken {
        let mut table = self.lock();
        let Some(slot) = token
            .0
            .checked_sub(FIRST_CONN)
            .and_then(|index| table.slots.get_mut(index))
        else {
            return Taken::Nothing;
        };
        if let Slot::Upgraded(upgraded) = slot {
            upgraded.edge();
            return Taken::Upgraded(Arc::clone(upgraded));
        }
        if let Some(conn) = slot.take_idle() {
            return Taken::Conn(conn);
        }
        if let Slot::Busy { pending, .. } = slot {
            *pending = true;
        }
        Taken::Nothing
    }

    /// Pass an event on instead of serving it: an idle connection is queued for the next free
    /// thread as if its event had come there (a system call under the table's lock would make
    /// every other thread's accept, park and close wait for it); for a busy one the event only
    /// marks it pending, as `take` would.
    pub(crate) fn pass_on(&self, token: Token) {
        let mut table = self.lock();
        let SlotTable {
            slots,
            ready,
            ready_upgraded,
            ..
        } = &mut *table;
        let Some(slot) = token
            .0
            .checked_sub(FIRST_CONN)
            .and_then(|index| slots.get_mut(index))
        else {
            return;
        };
        match slot {
            Slot::Idle(_) => {
                let Some(mut conn) = slot.take_idle() else {
                    unreachable!("matched Idle above")
                };
                conn.mark_readable();
                ready.push_back(conn);
                self.signal(table);
            }
            Slot::Busy { pending, .. } => *pending = true,
            Slot::Upgraded(upgraded) => {
                upgraded.edge();
                ready_upgraded.push_back(Arc::clone(upgraded));
                self.signal(table);
            }
            Slot::Free => {}
        }
    }

    /// Parked connections past their deadline, taken from the table with their slots left busy
    /// (a connection with a parked request is cancelled instead: `cancel_parked`). The caller
    /// closes each (`close`) or, if its client sent a request after all, has it served
    /// (`serve_later`): the check for that is a system call, made after this lock is released.
    #[allow(clippy::vec_box)] // the boxes are the connections' own; they move on unchanged
    pub(crate) fn expired(&self, now: Instant) -> Vec<Box<Conn>> {
        let mut table = self.lock();
        let SlotTable {
            slots,
            ready_upgraded,
            ..
        } = &mut *table;
        let mut gone = Vec::new();
        let mut queued = false;
        for slot in slots.iter_mut() {
            if let Slot::Upgraded(upgraded) = slot {
                // One atomic load: its own lock is for the serving thread that acts on it.
                if upgraded.due(now) {
                    ready_upgraded.push_back(Arc::clone(upgraded));
                    queued = true;
                }
                continue;
            }
            if matches!(slot, Slot::Idle(conn) if conn.deadline() <= now && conn.parked_request().is_none())
            {
                if let Slot::Idle(conn) = std::mem::replace(slot, BUSY) {
                    gone.push(conn);
                }
            }
        }
        if queued {
            self.signal(table);
        }
        gone
    }

    /// A connection `expired` took whose client sent input before it was closed: a serving
    /// thread serves it as if its event had come (an event that does come meanwhile finds the
    /// slot busy and is kept as pending).
    pub(crate) fn serve_later(&self, mut conn: Box<Conn>) {
        conn.mark_readable();
        let mut table = self.lock();
        table.ready.push_back(conn);
        self.signal(table);
    }

    /// The process began draining at `now`: every parked connection's deadline is shortened
    /// (`Conn::begin_drain`).
    pub(crate) fn begin_drain(&self, now: Instant, config: &Config) {
        for slot in self.lock().slots.iter_mut() {
            // A parked request has until the graceful timeout, when it is cancelled.
            if let Slot::Idle(conn) = slot {
                if conn.parked_request().is_none() {
                    conn.begin_drain(now, config);
                }
            }
        }
    }

    pub(crate) fn open(&self) -> usize {
        self.lock().open
    }
}
