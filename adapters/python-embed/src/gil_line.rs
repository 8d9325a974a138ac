//! [`GilLine`]: the serving threads' line for the GIL. Threads starting a request line up and
//! go into CPython's wait for the GIL one at a time, in the order they arrived (only the first in
//! line waits inside CPython) — except the thread that started the last request, which may go
//! straight in for its next one unless the first in line has waited past [`OVERDUE`].
//!
//! So the thread already serving keeps the GIL from one request to the next (CPython lets a
//! releasing thread take it straight back), and a request on another thread waits at most about
//! [`OVERDUE`] plus the requests lined up ahead of it.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long the first thread in line may wait while the thread that holds the GIL keeps it for
/// its next requests. A trade (Flask hello, 4 threads, 50 connections, one core;
/// `bench/wsgi_threads.sh` and `bench/wsgi_order.py`): 0 is a FIFO line, 1.1 context switches
/// per request and a request overtaken by 55 others at the p99 (fair: 49); 0.5 ms, 0.5 switches
/// and 60 (granian: 63); 1 ms, 0.4 and 79; 2 ms, 0.25 and 113.
pub(crate) const OVERDUE: Duration = Duration::from_micros(500);

pub(crate) struct GilLine {
    state: Mutex<State>,
}

struct State {
    /// The ticket the next thread lining up gets.
    next_ticket: u64,
    /// The ticket whose thread may wait inside CPython now.
    serving: u64,
    /// When the thread holding `serving` lined up, while it has not got the GIL yet.
    first_since: Option<Instant>,
    /// The threads parked in line: ticket, when they lined up, the thread.
    parked: VecDeque<(u64, Instant, Thread)>,
    /// The thread that started the last request (a number per thread, see [`thread_number`]).
    runner: Option<u64>,
}

/// A thread's way to the GIL; drop it once the GIL is taken.
pub(crate) enum Entry<'l> {
    /// A request under way, or the runner going straight in.
    Straight,
    /// Lined up: dropping the turn lets the next in line in.
    Turn(&'l GilLine),
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
                next_ticket: 0,
                serving: 0,
                first_since: None,
                parked: VecDeque::new(),
                runner: None,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Consistent after every statement: a panic elsewhere cannot leave it half-updated.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This thread's way to the GIL: for a new request (`starts_request`), in line or, for the
    /// runner, straight in while the first in line is not overdue; for a request under way,
    /// straight in.
    pub(crate) fn enter(&self, starts_request: bool) -> Entry<'_> {
        if !starts_request {
            return Entry::Straight;
        }
        let me = thread_number();
        let now = Instant::now();
        let mut state = self.state();
        let first_waited = state
            .first_since
            .map(|since| now.saturating_duration_since(since));
        let line_empty = state.next_ticket == state.serving;
        if !line_empty && state.runner == Some(me) && first_waited.is_some_and(|w| w <= OVERDUE) {
            return Entry::Straight;
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        if ticket == state.serving {
            state.first_since = Some(now);
        } else {
            state.parked.push_back((ticket, now, thread::current()));
            while state.serving != ticket {
                drop(state);
                // A stale wake-up only loops: the ticket decides.
                thread::park();
                state = self.state();
            }
        }
        Entry::Turn(self)
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        let Entry::Turn(line) = self else { return };
        let mut state = line.state();
        // Dropped once this thread has the GIL: it is the runner now.
        state.runner = Some(thread_number());
        state.serving += 1;
        let serving = state.serving;
        let next = match state.parked.front() {
            Some(&(ticket, _, _)) if ticket == serving => state.parked.pop_front(),
            _ => None,
        };
        state.first_since = next.as_ref().map(|&(_, since, _)| since);
        drop(state);
        if let Some((_, _, thread)) = next {
            thread.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Entry, GilLine, OVERDUE};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;

    /// A thread that lines up, records `i` in `order` when its turn comes and keeps the turn
    /// until told (as a thread keeps it until CPython gives it the GIL). Returns once it has a
    /// ticket.
    fn line_up(
        line: &Arc<GilLine>,
        order: &Arc<Mutex<Vec<usize>>>,
        i: usize,
    ) -> (JoinHandle<()>, mpsc::Sender<()>) {
        let before = line.state().next_ticket;
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::spawn({
            let (line, order) = (Arc::clone(line), Arc::clone(order));
            move || {
                let entry = line.enter(true);
                order.lock().unwrap().push(i);
                rx.recv().unwrap();
                drop(entry);
            }
        });
        while line.state().next_ticket == before {
            std::thread::yield_now();
        }
        (handle, tx)
    }

    fn wait_for(order: &Mutex<Vec<usize>>, len: usize) {
        while order.lock().unwrap().len() < len {
            std::thread::yield_now();
        }
    }

    #[test]
    fn one_thread_at_a_time_in_line_and_every_thread_passes() {
        const THREADS: usize = 8;
        const PASSES: usize = 300;
        let line = Arc::new(GilLine::new());
        let inside = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (line, inside) = (Arc::clone(&line), Arc::clone(&inside));
                std::thread::spawn(move || {
                    for _ in 0..PASSES {
                        let entry = line.enter(true);
                        if matches!(entry, Entry::Turn(_)) {
                            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two in line");
                            std::thread::yield_now();
                            inside.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let state = line.state();
        assert_eq!(state.next_ticket, state.serving);
        assert!(state.parked.is_empty());
    }

    #[test]
    fn the_runner_goes_first_until_the_first_in_line_is_overdue() {
        let line = Arc::new(GilLine::new());
        let order = Arc::new(Mutex::new(Vec::new()));
        // This thread starts a request and has the GIL: it is the runner.
        let mine = line.enter(true);
        let (first, let_first_go) = line_up(&line, &order, 0);
        let (second, let_second_go) = line_up(&line, &order, 1);
        drop(mine);
        // Thread 0 is first in line (in CPython's wait); the runner's next request goes first.
        wait_for(&order, 1);
        assert!(matches!(line.enter(true), Entry::Straight));
        // Once thread 0 is overdue, the runner lines up: behind thread 1.
        std::thread::sleep(OVERDUE * 2);
        let released = Arc::new(AtomicUsize::new(0));
        let releaser = std::thread::spawn({
            let (order, released) = (Arc::clone(&order), Arc::clone(&released));
            move || {
                std::thread::sleep(OVERDUE * 5);
                released.store(1, Ordering::SeqCst);
                let_first_go.send(()).unwrap();
                wait_for(&order, 2);
                released.store(2, Ordering::SeqCst);
                let_second_go.send(()).unwrap();
            }
        });
        let entry = line.enter(true);
        assert!(matches!(entry, Entry::Turn(_)));
        assert_eq!(released.load(Ordering::SeqCst), 2, "went ahead of the line");
        drop(entry);
        for handle in [first, second, releaser] {
            handle.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1]);
    }
}
