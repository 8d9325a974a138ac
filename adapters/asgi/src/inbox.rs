//! How serving threads hand work to the loop without the GIL: a queue of [`Job`]s and one byte
//! on a socket pair the loop watches (`loop.add_reader`), written only when the queue was empty.
//!
//! Why: taking the GIL on a serving thread (to build the scope, to schedule a coroutine, to
//! resume one) hands the GIL back and forth between that thread and the loop thread, a futex
//! wake and a context switch each way, for every request; on one CPU that was most of the
//! bridge's cost. Now serving threads copy the request's variables (plain Rust), queue them and
//! go on; the loop thread, which holds the GIL anyway, builds scopes and starts coroutines for
//! every request queued since its last turn, so under load one wake carries many requests.

use crate::exchange::Shared;
use pyo3::prelude::*;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};

/// One request's CGI variables, copied out of the server's environ (which is freed at `close`,
/// possibly before the loop gets to the request): one buffer, and where each pair is in it.
pub(crate) struct Vars {
    bytes: Vec<u8>,
    /// (name end, value end) offsets into `bytes`; each pair starts where the last one ended.
    ends: Vec<(u32, u32)>,
}

impl Vars {
    /// `vars` gives the same variables each call: once to size the buffer, once to copy.
    ///
    /// Sized exactly, not rounded up: the buffer is freed on the loop thread, so a serving
    /// thread's allocator cache never has one to reuse, and a request for 1 KiB or more goes
    /// to glibc's large bins, which first consolidate every small chunk freed so far
    /// (`malloc_consolidate`, seen in the serving threads' profile of the bare hello).
    pub(crate) fn copy<'a, I>(vars: impl Fn() -> I) -> Vars
    where
        I: Iterator<Item = (&'a [u8], &'a [u8])>,
    {
        let (count, len) = vars().fold((0, 0), |(count, len), (name, value)| {
            (count + 1, len + name.len() + value.len())
        });
        let mut out = Vars {
            bytes: Vec::with_capacity(len),
            ends: Vec::with_capacity(count),
        };
        for (name, value) in vars() {
            out.bytes.extend_from_slice(name);
            let name_end = out.bytes.len() as u32;
            out.bytes.extend_from_slice(value);
            out.ends.push((name_end, out.bytes.len() as u32));
        }
        out
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut start = 0usize;
        self.ends.iter().map(move |&(name_end, value_end)| {
            let (name_end, value_end) = (name_end as usize, value_end as usize);
            let pair = (
                &self.bytes[start..name_end],
                &self.bytes[name_end..value_end],
            );
            start = value_end;
            pair
        })
    }
}

/// What a serving thread asks of the loop.
pub(crate) enum Job {
    /// Build the scope and start the app's coroutine for a request.
    Start(Vars, Arc<Shared>),
    /// Resume the coroutine awaiting this future.
    Resume(PyObject),
    /// The request ended first (client gone, `--timeout`): cancel its coroutine.
    Cancel(Arc<Shared>),
}

struct Queue {
    jobs: Vec<Job>,
    /// A byte is on its way to the loop: later jobs ride on it.
    signalled: bool,
}

/// The queue and the socket pair. The loop reads `reader` (registered by `bridge.py`).
pub(crate) struct Inbox {
    queue: Mutex<Queue>,
    writer: UnixStream,
    reader: UnixStream,
}

impl Inbox {
    pub(crate) fn new() -> std::io::Result<Inbox> {
        let (writer, reader) = UnixStream::pair()?;
        writer.set_nonblocking(true)?;
        reader.set_nonblocking(true)?;
        Ok(Inbox {
            queue: Mutex::new(Queue {
                jobs: Vec::new(),
                signalled: false,
            }),
            writer,
            reader,
        })
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A push or a take leaves the queue consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The descriptor the loop watches.
    pub(crate) fn reader_fd(&self) -> i32 {
        self.reader.as_raw_fd()
    }

    /// Queues `job` (any thread, no GIL needed); wakes the loop if nothing else did.
    pub(crate) fn push(&self, job: Job) {
        let wake = {
            let mut q = self.queue();
            q.jobs.push(job);
            !std::mem::replace(&mut q.signalled, true)
        };
        if wake {
            // A full socket buffer means a byte is already waiting: the loop will come.
            let _ = (&self.writer).write(&[1]);
        }
    }

    /// On the loop thread: everything queued so far (the socket emptied first, so a job pushed
    /// after the take signals again).
    pub(crate) fn take(&self) -> Vec<Job> {
        let mut sink = [0u8; 256];
        while matches!((&self.reader).read(&mut sink), Ok(n) if n > 0) {}
        let mut q = self.queue();
        q.signalled = false;
        std::mem::take(&mut q.jobs)
    }
}
