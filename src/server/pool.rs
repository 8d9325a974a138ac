//! The app threads: a queue of connections with a whole request head buffered.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::conn::{self, After, Conn, ThreadScratch};
use super::event_loop::Slots;
use super::Shared;

#[derive(Default)]
struct Queue {
    ready: VecDeque<Box<Conn>>,
    closing: bool,
    /// Threads blocked in `wait`: a wake-up (a futex syscall) is only needed when one is.
    sleeping: usize,
}

/// A fixed set of threads taking ready connections from one queue.
pub(crate) struct Pool {
    queue: Arc<(Mutex<Queue>, Condvar)>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    pub(crate) fn start(shared: &Arc<Shared>, slots: &Arc<Slots>) -> std::io::Result<Pool> {
        let queue: Arc<(Mutex<Queue>, Condvar)> = Arc::default();
        let mut threads = Vec::with_capacity(shared.config.threads);
        for i in 0..shared.config.threads.max(1) {
            let queue = Arc::clone(&queue);
            let shared = Arc::clone(shared);
            let slots = Arc::clone(slots);
            let thread = std::thread::Builder::new()
                .name(format!("app-{i}"))
                .spawn(move || work(i, &queue, &shared, &slots))?;
            threads.push(thread);
        }
        Ok(Pool { queue, threads })
    }

    pub(crate) fn submit(&self, conn: Box<Conn>) {
        let (lock, ready) = &*self.queue;
        let mut queue = lock.lock().unwrap_or_else(|e| e.into_inner());
        queue.ready.push_back(conn);
        // A busy thread takes the next connection from the queue before it sleeps again.
        let wake = queue.sleeping > queue.ready.len() - 1;
        drop(queue);
        if wake {
            ready.notify_one();
        }
    }

    /// Let the threads finish what is queued, then wait for them.
    pub(crate) fn finish(self) {
        let (lock, ready) = &*self.queue;
        lock.lock().unwrap_or_else(|e| e.into_inner()).closing = true;
        ready.notify_all();
        for thread in self.threads {
            if thread.join().is_err() {
                log::error!("an app thread panicked");
            }
        }
    }
}

fn work(thread: usize, queue: &(Mutex<Queue>, Condvar), shared: &Shared, slots: &Slots) {
    let mut scratch = ThreadScratch::new(thread);
    loop {
        let mut conn = {
            let (lock, ready) = queue;
            let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(conn) = q.ready.pop_front() {
                    break conn;
                }
                if q.closing {
                    return;
                }
                q.sleeping += 1;
                q = ready.wait(q).unwrap_or_else(|e| e.into_inner());
                q.sleeping -= 1;
            }
        };
        // Serve, and keep serving while data arrived while we were busy (the loop marked it).
        loop {
            match conn::serve(&mut conn, shared, &mut scratch) {
                After::Close => {
                    slots.close(conn);
                    break;
                }
                After::Park => match slots.park(conn, shared) {
                    Some(again) => conn = again,
                    None => break,
                },
            }
        }
    }
}
