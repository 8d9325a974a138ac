//! [`Backlog`]: events a serving thread took from `epoll_wait` but leaves to whichever thread is
//! free first, oldest first.
//!
//! One `epoll_wait` returns up to a batch of events, which saves a syscall per event under load.
//! A thread that served its whole batch itself served those connections in turn with nobody
//! else's: with several threads each working through a batch, a connection at the end of one
//! waited for all of that thread's batch while the other threads answered newer events. That
//! costs nothing visible with a fast app, but with a slow one sharing a core and a lock (Python's
//! GIL: each thread serves one request per turn) the last of a batch of 50 waited about 150
//! requests' time instead of 50. So a thread serves the first event of its batch and queues the
//! rest here, and every thread takes from here before it asks epoll for newer events: the
//! connections are served in the order their events were reported, at the cost of a lock per
//! event.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use super::slots::Token;

#[derive(Default)]
pub(crate) struct Backlog {
    queue: Mutex<VecDeque<Token>>,
}

impl Backlog {
    fn queue(&self) -> MutexGuard<'_, VecDeque<Token>> {
        // A queue of plain tokens is consistent after every push and pop.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `tokens` behind those already waiting, in their order.
    pub(crate) fn push(&self, tokens: impl Iterator<Item = Token>) {
        self.queue().extend(tokens);
    }

    /// The oldest event still waiting.
    pub(crate) fn pop(&self) -> Option<Token> {
        self.queue().pop_front()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::Backlog;
    use crate::server::slots::Token;

    #[test]
    fn events_leave_in_the_order_they_came() {
        let backlog = Backlog::default();
        backlog.push([Token(5), Token(6)].into_iter());
        backlog.push([Token(7)].into_iter());
        assert!(!backlog.is_empty());
        let order: Vec<_> = std::iter::from_fn(|| backlog.pop()).collect();
        assert_eq!(order, vec![Token(5), Token(6), Token(7)]);
        assert!(backlog.is_empty());
    }
}
