//! Every connection's slot, shared by the serving threads.
//!
//! A slot is `Idle` while the connection waits on the epoll instance and `Busy` while a thread
//! serves it. A socket is registered (edge-triggered) the first time it is parked, and stays
//! registered until it closes; an event for a busy connection only sets `pending`, which the
//! serving thread sees when it tries to park the connection — so no readiness is ever lost and
//! no `epoll_ctl` is needed per request. A connection's token is its slot index plus
//! `FIRST_CONN`.

use std::os::fd::AsFd;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::conn::Conn;
use super::Shared;
use crate::sys::epoll::Epoll;

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
    Busy { pending: bool },
}

/// Every connection's slot, indexed by `token - FIRST_CONN`.
pub(crate) struct Slots {
    inner: Mutex<SlotTable>,
}

#[derive(Default)]
struct SlotTable {
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Slots that are not free: the connections still open.
    open: usize,
}

impl Slots {
    pub(crate) fn new() -> Slots {
        Slots {
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotTable> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Give a connection back to `epoll`, registering it there if this is its first park (one
    /// served and closed without ever waiting, `Connection: close`, costs no `epoll_ctl`).
    /// Returns it if input arrived meanwhile, so the caller keeps serving it.
    pub(crate) fn park(
        &self,
        mut conn: Box<Conn>,
        shared: &Shared,
        epoll: &Epoll,
    ) -> Option<Box<Conn>> {
        let mut table = self.lock();
        let index = conn.token().0 - FIRST_CONN;
        match &mut table.slots[index] {
            Slot::Busy { pending } if *pending => {
                *pending = false;
                conn.mark_readable();
                Some(conn)
            }
            slot => {
                conn.set_parked_deadline(shared.coarse_now(), &shared.config, shared.draining());
                if !conn.is_registered() {
                    // Edge-triggered registration reports input that is already there, so
                    // nothing that arrived before this point is missed.
                    let token = conn.token().event_data();
                    if let Err(e) = epoll.add(conn.stream_mut().as_fd(), token) {
                        log::warn!("{}: cannot watch the connection: {e}", conn.peer());
                        *slot = Slot::Free;
                        table.free.push(index);
                        table.open -= 1;
                        return None;
                    }
                    conn.mark_registered();
                }
                *slot = Slot::Idle(conn);
                None
            }
        }
    }

    /// Forget a connection a serving thread is done with; dropping it closes the socket (which also
    /// removes it from epoll).
    pub(crate) fn close(&self, conn: Box<Conn>) {
        let index = conn.token().0 - FIRST_CONN;
        let mut table = self.lock();
        table.slots[index] = Slot::Free;
        table.free.push(index);
        table.open -= 1;
        drop(table);
        drop(conn);
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
        table.slots[index] = Slot::Busy { pending: false };
        table.open += 1;
        Token(index + FIRST_CONN)
    }

    /// Take an idle connection for work, or note that input arrived for a busy one.
    pub(crate) fn take(&self, token: Token) -> Option<Box<Conn>> {
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

    /// Pass an event on instead of serving it: an idle connection's registration is re-armed,
    /// which makes `epoll` report its input to a waiting thread; for a busy one the event only
    /// marks it pending, as `take` would.
    pub(crate) fn pass_on(&self, token: Token, epoll: &Epoll) {
        let mut table = self.lock();
        let Some(slot) = token
            .0
            .checked_sub(FIRST_CONN)
            .and_then(|index| table.slots.get_mut(index))
        else {
            return;
        };
        match slot {
            Slot::Idle(conn) => {
                if let Err(e) = epoll.modify(conn.stream_mut().as_fd(), token.event_data()) {
                    log::debug!("{}: cannot pass the event on: {e}", conn.peer());
                }
            }
            Slot::Busy { pending } => *pending = true,
            Slot::Free => {}
        }
    }

    /// Parked connections past their deadline, removed from the table.
    #[allow(clippy::vec_box)] // the boxes are the connections' own; they move on unchanged
    pub(crate) fn expired(&self, now: Instant) -> Vec<Box<Conn>> {
        let mut table = self.lock();
        let SlotTable { slots, free, open } = &mut *table;
        let mut gone = Vec::new();
        for (index, slot) in slots.iter_mut().enumerate() {
            if matches!(slot, Slot::Idle(conn) if conn.deadline() <= now) {
                if let Slot::Idle(conn) = std::mem::replace(slot, Slot::Free) {
                    gone.push(conn);
                    free.push(index);
                    *open -= 1;
                }
            }
        }
        gone
    }

    /// Free the read buffers of connections parked with nothing buffered since before
    /// `idle_since`: an idle keep-alive connection then costs its slot, not 4 KiB. Connections
    /// that come back sooner keep theirs, so a busy connection never reallocates.
    pub(crate) fn release_idle_buffers(&self, idle_since: Instant, keep_alive: Duration) {
        for slot in self.lock().slots.iter_mut() {
            if let Slot::Idle(conn) = slot {
                conn.release_buffer_if_idle(idle_since, keep_alive);
            }
        }
    }

    /// While draining, a parked connection waits at most `limit` more for its next request.
    pub(crate) fn shorten_deadlines(&self, limit: Instant) {
        for slot in self.lock().slots.iter_mut() {
            if let Slot::Idle(conn) = slot {
                conn.shorten_deadline(limit);
            }
        }
    }

    pub(crate) fn open(&self) -> usize {
        self.lock().open
    }
}
