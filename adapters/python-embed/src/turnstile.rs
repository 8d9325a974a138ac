//! [`Turnstile`]: threads pass one at a time, in the order they arrived (a FIFO ticket lock that
//! wakes exactly the next thread in line).
//!
//! `std::sync::Mutex` lets an arriving thread take the lock ahead of one that was woken to take it,
//! which is exactly the unfairness the turnstile exists to remove (see
//! [`crate::python_thread`]).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::thread::{self, Thread};

pub(crate) struct Turnstile {
    line: Mutex<Line>,
}

struct Line {
    /// The ticket the next arriving thread gets.
    next_ticket: u64,
    /// The ticket that may pass now.
    serving: u64,
    /// The threads waiting, in ticket order (`serving + 1`, `serving + 2`, ...).
    waiting: VecDeque<(u64, Thread)>,
}

/// The turn of the thread holding it; dropping it lets the next thread in line pass.
pub(crate) struct Turn<'t>(&'t Turnstile);

impl Turnstile {
    pub(crate) const fn new() -> Turnstile {
        Turnstile {
            line: Mutex::new(Line {
                next_ticket: 0,
                serving: 0,
                waiting: VecDeque::new(),
            }),
        }
    }

    fn line(&self) -> MutexGuard<'_, Line> {
        // The line's state is consistent after every statement: a panic elsewhere cannot have
        // left it half-updated.
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until every thread that arrived earlier has passed.
    pub(crate) fn wait_turn(&self) -> Turn<'_> {
        let mut line = self.line();
        let ticket = line.next_ticket;
        line.next_ticket += 1;
        if ticket != line.serving {
            line.waiting.push_back((ticket, thread::current()));
            while line.serving != ticket {
                drop(line);
                // A spurious or stale wake-up only loops: the ticket decides.
                thread::park();
                line = self.line();
            }
        }
        Turn(self)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut line = self.0.line();
        line.serving += 1;
        let serving = line.serving;
        let next = match line.waiting.front() {
            Some((ticket, _)) if *ticket == serving => line.waiting.pop_front(),
            _ => None,
        };
        drop(line);
        if let Some((_, thread)) = next {
            thread.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Turnstile;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[test]
    fn one_thread_at_a_time_and_every_thread_passes() {
        const THREADS: usize = 8;
        const PASSES: usize = 500;
        let turnstile = Arc::new(Turnstile::new());
        let inside = Arc::new(AtomicUsize::new(0));
        let passed = Arc::new(Mutex::new(0usize));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (turnstile, inside, passed) = (
                    Arc::clone(&turnstile),
                    Arc::clone(&inside),
                    Arc::clone(&passed),
                );
                std::thread::spawn(move || {
                    for _ in 0..PASSES {
                        let _turn = turnstile.wait_turn();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two inside");
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        *passed.lock().unwrap() += 1;
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(*passed.lock().unwrap(), THREADS * PASSES);
    }

    #[test]
    fn threads_pass_in_the_order_they_arrived() {
        let turnstile = Arc::new(Turnstile::new());
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = turnstile.wait_turn();
        let mut handles = Vec::new();
        for i in 0..4 {
            let (line, order) = (Arc::clone(&turnstile), Arc::clone(&order));
            handles.push(std::thread::spawn(move || {
                let _turn = line.wait_turn();
                order.lock().unwrap().push(i);
            }));
            // Let thread i take its ticket before thread i + 1 starts.
            while turnstile.line().waiting.len() < i + 1 {
                std::thread::yield_now();
            }
        }
        drop(first);
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    }
}
