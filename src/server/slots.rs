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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
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

/// Slots in the first chunk; each further chunk holds twice as many as the one before.
const FIRST_CHUNK: usize = 64;
/// Chunks at most: room for `FIRST_CHUNK * (2^CHUNKS - 1)` connections, far above any
/// descriptor limit.
const CHUNKS: usize = 32;

/// Every connection's slot, indexed by `token - FIRST_CONN`, and the deferred requests ready to
/// run again.
///
/// Each slot has a lock of its own, so events on different connections never wait for each
/// other: an event, a park or a wake locks only its connection's slot (and the ready queue's
/// lock when it queues something). Slots live in chunks that never move once made, so finding
/// one takes no lock. Only accepting and closing take the shared list of free slots. Lock order:
/// an upgraded connection's own lock, then a slot, then the ready queue or the free list.
pub(crate) struct Slots {
    /// Chunk `k` holds `FIRST_CHUNK << k` slots, the indices from `FIRST_CHUNK * (2^k - 1)` on.
    chunks: [OnceLock<Box<[Mutex<Slot>]>>; CHUNKS],
    free: Mutex<FreeList>,
    /// Slots that are not free: the connections still open.
    open: AtomicUsize,
    queue: Mutex<ReadyQueue>,
    /// Parked requests (in `Idle` slots or in the ready queue).
    parked: AtomicUsize,
    /// The last request number `request_id` gave out.
    last_request: AtomicU64,
    /// Raised when a connection is queued ready (and to stop the threads): registered with the
    /// serving threads' epoll instance under the `WAKER` token.
    waker: Waker,
}

/// The slots not in use, and how many were ever handed out (the next new index).
#[derive(Default)]
struct FreeList {
    free: Vec<usize>,
    made: usize,
}

/// Work for the next free serving thread.
#[derive(Default)]
struct ReadyQueue {
    /// A parked request woken or cancelled, or an idle connection whose event was passed on
    /// (`pass_on`).
    conns: VecDeque<Box<Conn>>,
    /// Upgraded connections a serving thread must look at (an app thread's call, a deadline).
    upgraded: VecDeque<Arc<Upgraded>>,
    /// An eventfd edge was raised for the queues that no thread has answered yet
    /// (`pop_ready` clears it): while it is set, queueing more raises no other (see `signal`).
    signalled: bool,
}

/// The chunk holding slot `index`, and the slot's place in it.
fn chunk_of(index: usize) -> (usize, usize) {
    let n = index / FIRST_CHUNK + 1;
    let chunk = (usize::BITS - 1 - n.leading_zeros()) as usize;
    (chunk, index - FIRST_CHUNK * ((1 << chunk) - 1))
}

impl Slots {
    pub(crate) fn new(waker: Waker) -> Slots {
        Slots {
            chunks: [const { OnceLock::new() }; CHUNKS],
            free: Mutex::default(),
            open: AtomicUsize::new(0),
            queue: Mutex::default(),
            parked: AtomicUsize::new(0),
            last_request: AtomicU64::new(0),
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

    /// The slot `token` names, locked, if it was ever made.
    fn slot(&self, token: Token) -> Option<MutexGuard<'_, Slot>> {
        let (chunk, at) = chunk_of(token.0.checked_sub(FIRST_CONN)?);
        let slot = self.chunks.get(chunk)?.get()?.get(at)?;
        Some(lock(slot))
    }

    /// Every slot made so far, one at a time (for the coordinator's sweeps).
    fn each_slot(&self) -> impl Iterator<Item = MutexGuard<'_, Slot>> {
        self.chunks
            .iter()
            // Not map_while: two accepts can make chunk k+1 before chunk k, and a sweep must
            // not stop at the gap.
            .filter_map(OnceLock::get)
            .flat_map(|chunk| chunk.iter().map(lock))
    }

    /// The number wakes of the running request on `token` name it by (given out on first use).
    pub(crate) fn request_id(&self, token: Token) -> u64 {
        match self.slot(token).as_deref_mut() {
            Some(Slot::Busy { request, .. }) => {
                if *request == 0 {
                    *request = self.last_request.fetch_add(1, Ordering::Relaxed) + 1;
                }
                *request
            }
            _ => 0,
        }
    }

    /// The running request on `token` ended: wakes naming it do nothing from now on.
    pub(crate) fn end_request(&self, token: Token) {
        if let Some(Slot::Busy { request, woken, .. }) = self.slot(token).as_deref_mut() {
            *request = 0;
            *woken = false;
        }
    }

    /// A waker of request `request` on `token` was woken (any thread): queue it if it is parked,
    /// note it if it runs, ignore it if it ended.
    pub(crate) fn wake(&self, token: Token, request: u64) {
        if let Some(conn) = self.take_woken(token, request) {
            self.queue_conn(conn);
        }
    }

    /// [`Slots::wake`] for a wake the calling serving thread answers itself
    /// (`waker_wake_here`): the parked connection is handed to it instead of queued, and no
    /// other thread is woken. A wake of a parked request gives its connection, taken out of its
    /// slot (left busy); a running one is marked woken.
    pub(crate) fn take_woken(&self, token: Token, request: u64) -> Option<Box<Conn>> {
        let mut slot = self.slot(token)?;
        match &mut *slot {
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

    /// Queue `conn` for the next free serving thread.
    pub(crate) fn queue_conn(&self, conn: Box<Conn>) {
        let mut queue = self.queue();
        queue.conns.push_back(conn);
        self.signal(queue);
    }

    /// The next ready connection (a woken or cancelled parked request, or a passed-on event), or
    /// upgraded connection to look at; if more wait, another thread is woken for them.
    pub(crate) fn pop_ready(&self) -> Option<Ready> {
        let mut queue = self.queue();
        // This thread answers the edge (whichever source raised it) and looks at the queues
        // now, under the lock: what is queued from here on needs an edge of its own.
        queue.signalled = false;
        let ready = match queue.conns.pop_front() {
            Some(conn) => Ready::Conn(conn),
            None => Ready::Upgraded(queue.upgraded.pop_front()?),
        };
        if !queue.conns.is_empty() || !queue.upgraded.is_empty() {
            self.signal(queue);
        }
        Some(ready)
    }

    /// Something was just queued in `queue` (whose lock the caller held while queueing): make
    /// sure a serving thread will call `pop_ready`, writing the eventfd only if no edge raised
    /// for the queues is still unanswered. Without this, a burst of wakes (an asyncio loop
    /// finishing many requests in one turn) wrote the eventfd once per wake and `pop_ready`
    /// once more per request left behind.
    ///
    /// No wake-up is lost: `signalled` is only read and written under the queue's lock, and
    /// `pop_ready` clears it in the same critical section in which it looks at the queues. So
    /// a queueing that finds it set comes before that look (which sees what it queued, and
    /// `pop_ready` raises a new edge if anything is left for another thread), and every
    /// WAKER event leads to a `pop_ready` (`event_loop::handle`, also from the backlog; a
    /// passed-on WAKER event is raised again). The edge itself is written after the lock is
    /// released: a queueing that comes in between finds `signalled` set and relies on this
    /// write, which follows; a thread that takes the item before it (woken by another source
    /// of edges: HTTP/2 jobs, a stop) only makes that edge find an empty queue.
    fn signal(&self, mut queue: MutexGuard<'_, ReadyQueue>) {
        let raise = !std::mem::replace(&mut queue.signalled, true);
        drop(queue);
        if raise {
            if let Err(e) = self.waker.wake() {
                log::warn!("cannot wake the serving threads: {e}");
                // Let the next queueing try again.
                self.queue().signalled = false;
            }
        }
    }

    /// Queue an upgraded connection for a serving thread (any thread).
    pub(crate) fn queue_upgraded(&self, upgraded: Arc<Upgraded>) {
        let mut queue = self.queue();
        queue.upgraded.push_back(upgraded);
        self.signal(queue);
    }

    /// The request on `conn` upgraded: the connection becomes `upgraded`'s, watched for input
    /// and room to send from now on (one `epoll_ctl`, never another: edges do the rest). The
    /// caller then calls `Upgraded::ready`, which also serves any event that came meanwhile.
    pub(crate) fn upgrade(&self, mut conn: Box<Conn>, upgraded: &Arc<Upgraded>, epoll: &Epoll) {
        let token = conn.token();
        let add = !conn.is_registered();
        let watched = epoll.watch(conn.stream_mut().as_fd(), token.event_data(), add, true);
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
        if let Some(mut slot) = self.slot(token) {
            if upgraded.socket_closed() {
                // An app thread closed it between `attach` and here; its `free_upgraded` found
                // the slot still busy and left it, so the slot is freed here or never.
                *slot = Slot::Free;
                drop(slot);
                self.free_index(token);
            } else {
                *slot = Slot::Upgraded(Arc::clone(upgraded));
            }
        }
    }

    /// The upgraded connection `upgraded` closed its socket: its slot is free. (Called with the
    /// connection's own lock held: lock order connection, then slot.)
    pub(crate) fn free_upgraded(&self, token: Token, upgraded: &Upgraded) {
        let Some(mut slot) = self.slot(token) else {
            return;
        };
        // Still busy if it closed before it was attached: the slot is the request's then.
        if matches!(&*slot, Slot::Upgraded(held) if std::ptr::eq(Arc::as_ptr(held), upgraded)) {
            // The `Arc` held by the slot drops here, not the last one (the caller holds one).
            *slot = Slot::Free;
            drop(slot);
            self.free_index(token);
        }
    }

    /// Every upgraded connection (for the drain).
    pub(crate) fn upgraded(&self) -> Vec<Arc<Upgraded>> {
        self.each_slot()
            .filter_map(|slot| match &*slot {
                Slot::Upgraded(upgraded) => Some(Arc::clone(upgraded)),
                _ => None,
            })
            .collect()
    }

    /// Queue every parked request for `cancel` whose connection's deadline is before `by`
    /// (every one, with `None`).
    pub(crate) fn cancel_parked(&self, cancel: Cancel, by: Option<Instant>) {
        let mut due = Vec::new();
        for mut slot in self.each_slot() {
            if matches!(&*slot, Slot::Idle(conn)
                if conn.parked_request().is_some() && by.is_none_or(|by| conn.deadline() <= by))
            {
                let Slot::Idle(mut conn) = std::mem::replace(&mut *slot, BUSY) else {
                    unreachable!("matched Idle above")
                };
                conn.cancel_parked(cancel);
                due.push(conn);
            }
        }
        if !due.is_empty() {
            let mut queue = self.queue();
            queue.conns.extend(due);
            self.signal(queue);
        }
    }

    /// Parked requests (waiting or queued), for the drain.
    pub(crate) fn parked(&self) -> usize {
        self.parked.load(Ordering::SeqCst)
    }

    /// A request parks (`true`) or ends after having parked (`false`).
    pub(crate) fn count_parked(&self, parked: bool) {
        if parked {
            self.parked.fetch_add(1, Ordering::SeqCst);
        } else {
            let less = |n: usize| Some(n.saturating_sub(1));
            let _ = self
                .parked
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, less);
        }
    }

    fn queue(&self) -> MutexGuard<'_, ReadyQueue> {
        lock(&self.queue)
    }

    /// Give a connection back to `epoll`, registering it there if this is its first park (one
    /// served and closed without ever waiting, `Connection: close`, costs no `epoll_ctl`).
    /// Returns it if input arrived meanwhile, so the caller keeps serving it.
    ///
    /// The registration is made before the slot's lock is taken: no system call is made under
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
        let Some(mut slot) = self.slot(conn.token()) else {
            unreachable!("a connection's slot is made before it is handed out")
        };
        match &mut *slot {
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
                drop(slot);
                self.queue_conn(conn);
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
        if let Some(mut slot) = self.slot(token) {
            *slot = Slot::Free;
        }
        self.free_index(token);
    }

    /// The slot of `token`, just made free, may be handed out again.
    fn free_index(&self, token: Token) {
        lock(&self.free).free.push(token.0 - FIRST_CONN);
        self.open.fetch_sub(1, Ordering::SeqCst);
    }

    /// A slot for a new connection, already marked busy: the caller owns the connection.
    pub(crate) fn reserve(&self) -> Token {
        let index = {
            let mut free = lock(&self.free);
            match free.free.pop() {
                Some(index) => index,
                None => {
                    free.made += 1;
                    free.made - 1
                }
            }
        };
        let (chunk, at) = chunk_of(index);
        let chunk = self.chunks[chunk].get_or_init(|| {
            (0..FIRST_CHUNK << chunk)
                .map(|_| Mutex::new(Slot::Free))
                .collect()
        });
        *lock(&chunk[at]) = BUSY;
        self.open.fetch_add(1, Ordering::SeqCst);
        Token(index + FIRST_CONN)
    }

    /// Take an idle connection for work, or note that input arrived for a busy one.
    pub(crate) fn take(&self, token: Token) -> Taken {
        let Some(mut slot) = self.slot(token) else {
            return Taken::Nothing;
        };
        if let Slot::Upgraded(upgraded) = &*slot {
            upgraded.edge();
            return Taken::Upgraded(Arc::clone(upgraded));
        }
        if let Some(conn) = slot.take_idle() {
            return Taken::Conn(conn);
        }
        if let Slot::Busy { pending, .. } = &mut *slot {
            *pending = true;
        }
        Taken::Nothing
    }

    /// Pass an event on instead of serving it: an idle connection is queued for the next free
    /// thread as if its event had come there (a system call here would keep this thread from
    /// the event it serves itself); for a busy one the event only marks it pending, as `take`
    /// would.
    pub(crate) fn pass_on(&self, token: Token) {
        let Some(mut slot) = self.slot(token) else {
            return;
        };
        match &mut *slot {
            Slot::Idle(_) => {
                let Some(mut conn) = slot.take_idle() else {
                    unreachable!("matched Idle above")
                };
                drop(slot);
                conn.mark_readable();
                self.queue_conn(conn);
            }
            Slot::Busy { pending, .. } => *pending = true,
            Slot::Upgraded(upgraded) => {
                upgraded.edge();
                let upgraded = Arc::clone(upgraded);
                drop(slot);
                self.queue_upgraded(upgraded);
            }
            Slot::Free => {}
        }
    }

    /// Parked connections past their deadline, taken from their slots with the slots left busy
    /// (a connection with a parked request is cancelled instead: `cancel_parked`). The caller
    /// closes each (`close`) or, if its client sent a request after all, has it served
    /// (`serve_later`): the check for that is a system call, made after the slots' locks are
    /// released.
    #[allow(clippy::vec_box)] // the boxes are the connections' own; they move on unchanged
    pub(crate) fn expired(&self, now: Instant) -> Vec<Box<Conn>> {
        let mut gone = Vec::new();
        let mut due = Vec::new();
        for mut slot in self.each_slot() {
            if let Slot::Upgraded(upgraded) = &*slot {
                // One atomic load: its own lock is for the serving thread that acts on it.
                if upgraded.due(now) {
                    due.push(Arc::clone(upgraded));
                }
                continue;
            }
            if matches!(&*slot, Slot::Idle(conn) if conn.deadline() <= now && conn.parked_request().is_none())
            {
                if let Slot::Idle(conn) = std::mem::replace(&mut *slot, BUSY) {
                    gone.push(conn);
                }
            }
        }
        if !due.is_empty() {
            let mut queue = self.queue();
            queue.upgraded.extend(due);
            self.signal(queue);
        }
        gone
    }

    /// A connection `expired` took whose client sent input before it was closed: a serving
    /// thread serves it as if its event had come (an event that does come meanwhile finds the
    /// slot busy and is kept as pending).
    pub(crate) fn serve_later(&self, mut conn: Box<Conn>) {
        conn.mark_readable();
        self.queue_conn(conn);
    }

    /// The process began draining at `now`: every parked connection's deadline is shortened
    /// (`Conn::begin_drain`).
    pub(crate) fn begin_drain(&self, now: Instant, config: &Config) {
        for mut slot in self.each_slot() {
            // A parked request has until the graceful timeout, when it is cancelled.
            if let Slot::Idle(conn) = &mut *slot {
                if conn.parked_request().is_none() {
                    conn.begin_drain(now, config);
                }
            }
        }
    }

    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_has_one_place_and_the_chunks_follow_each_other() {
        let mut expected = (0, 0);
        for index in 0..FIRST_CHUNK * 15 {
            assert_eq!(chunk_of(index), expected, "index {index}");
            expected.1 += 1;
            if expected.1 == FIRST_CHUNK << expected.0 {
                expected = (expected.0 + 1, 0);
            }
        }
        let (chunk, _) = chunk_of(u32::MAX as usize);
        assert!(chunk < CHUNKS, "4G connections fit: chunk {chunk}");
    }
}
