//! [`GilLine`]: who goes into the GIL next among the serving threads — the thread that just had
//! it may come back ahead of the others, but never ahead of one that has waited past
//! [`OVERDUE`].
//!
//! A thread asks with [`GilLine::ask`] and holds the returned [`Asking`] while it waits inside
//! CPython for the GIL; dropping it once the GIL is taken ends its wait. A thread starting a new
//! request (`may_stand_back`) first stands back, parked, while any other thread has been waiting
//! longer than [`OVERDUE`]; it is woken once none has. So the thread already serving requests
//! keeps the GIL from one request to the next (CPython lets a releasing thread take it straight
//! back), and a request on another thread waits at most about [`OVERDUE`] plus the requests of
//! the threads that were overdue before it.

use std::sync::{Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long a thread may wait for the GIL while others that started later take it. Past it, new
/// requests on other threads stand back until it has had the GIL. Long enough that a serving
/// thread holding the GIL serves a run of fast requests (a Flask hello is ~0.1 ms) without a
/// hand-over to another thread, each of which costs a context switch; short beside the latency
/// of a loaded worker (50 connections of Flask hello: ~5 ms) and beside CPython's own forced
/// switch (5 ms), which a thread starting a request would otherwise keep resetting.
pub(crate) const OVERDUE: Duration = Duration::from_millis(2);

pub(crate) struct GilLine {
    state: Mutex<State>,
}

struct State {
    /// The threads waiting for the GIL: a number per thread and when it began to wait.
    waiting: Vec<(u64, Instant)>,
    /// The threads standing back for an overdue one.
    standing_back: Vec<Thread>,
}

impl State {
    fn overdue(&self, now: Instant, except: u64) -> bool {
        self.waiting
            .iter()
            .any(|&(who, since)| who != except && now.saturating_duration_since(since) > OVERDUE)
    }
}

/// A thread's wait for the GIL; dropping it ends the wait (the GIL is taken).
pub(crate) struct Asking<'l> {
    line: &'l GilLine,
    who: u64,
}

/// A number per OS thread (cheaper to compare than `ThreadId`).
fn thread_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static NUMBER: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|n| *n)
}

impl GilLine {
    pub(crate) const fn new() -> GilLine {
        GilLine {
            state: Mutex::new(State {
                waiting: Vec::new(),
                standing_back: Vec::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Consistent after every statement: a panic elsewhere cannot leave it half-updated.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Begins this thread's wait for the GIL; with `may_stand_back`, first waits while another
    /// thread is overdue.
    pub(crate) fn ask(&self, may_stand_back: bool) -> Asking<'_> {
        let who = thread_number();
        let since = Instant::now();
        let mut state = self.state();
        if may_stand_back {
            let mut now = since;
            while state.overdue(now, who) {
                state.standing_back.push(thread::current());
                drop(state);
                // A stale wake-up only loops: the waiting threads' ages decide.
                thread::park();
                state = self.state();
                now = Instant::now();
            }
        }
        // Counted from the first ask: time spent standing back is time waited too.
        state.waiting.push((who, since));
        Asking { line: self, who }
    }
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        let mut state = self.line.state();
        if let Some(at) = state.waiting.iter().position(|&(who, _)| who == self.who) {
            state.waiting.swap_remove(at);
        }
        if state.standing_back.is_empty() || state.overdue(Instant::now(), u64::MAX) {
            return;
        }
        let woken = std::mem::take(&mut state.standing_back);
        drop(state);
        for thread in woken {
            thread.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{GilLine, OVERDUE};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn nobody_stands_back_before_a_wait_is_overdue() {
        let line = GilLine::new();
        let early = line.ask(true);
        let started = Instant::now();
        drop(line.ask(true));
        // Had it stood back, it would have waited for `early`, which is never dropped before.
        assert!(started.elapsed() < OVERDUE * 50);
        drop(early);
        assert!(line.state().waiting.is_empty());
    }

    #[test]
    fn a_new_request_stands_back_while_another_thread_is_overdue() {
        let line = Arc::new(GilLine::new());
        let old_done = Arc::new(AtomicBool::new(false));
        let old = std::thread::spawn({
            let (line, old_done) = (Arc::clone(&line), Arc::clone(&old_done));
            move || {
                let asking = line.ask(false);
                std::thread::sleep(OVERDUE * 4);
                old_done.store(true, Ordering::SeqCst);
                drop(asking);
            }
        });
        while line.state().waiting.is_empty() {
            std::thread::yield_now();
        }
        std::thread::sleep(OVERDUE * 2);
        // The old thread is overdue: a newcomer passes only once it has had its turn.
        drop(line.ask(true));
        assert!(
            old_done.load(Ordering::SeqCst),
            "went ahead of an overdue waiter"
        );
        old.join().unwrap();
        assert!(line.state().waiting.is_empty());
        assert!(line.state().standing_back.is_empty());
    }
}
