//! HTTP/2 (`docs/src/design/http2.md`): a connection whose first head is the connection preface
//! (h2c with prior knowledge, or a TLS client that chose `h2` by ALPN) is handed over to this
//! process's HTTP/2 thread (`driver.rs`), which runs the `h2` crate's server connections on a
//! single-threaded tokio runtime. Each stream a connection accepts becomes a job on a queue the
//! serving threads take from, announced by the slot table's eventfd as a woken deferred request
//! is; a serving thread runs it through the same ABI as an HTTP/1.1 request (`stream.rs`). An app
//! that declared it never waits (`WS_APP_NONBLOCKING`) has its new streams run on the HTTP/2
//! thread itself instead, between two reads of the connection (`driver.rs`).
//!
//! A handed-over connection keeps its slot (busy) until its HTTP/2 connection ends, so the
//! coordinator's drain waits for it as for any other; the drain sends it a GOAWAY.

mod calm;
mod driver;
mod fields;
mod io;
mod park;
mod statics;
mod stream;
mod tail;
mod transport;

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::conn::Conn;
use super::slots::Slots;
use crate::listen::ListenerOptions;
use crate::sys::epoll::Epoll;

/// The bounds on what one HTTP/2 client may ask of the server (`--http2-max-streams`,
/// `--http2-max-header-list`, `--http2-max-control-frames`); the defaults are what the server
/// always used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Streams one connection may have open (`SETTINGS_MAX_CONCURRENT_STREAMS`), and queued or
    /// running in the app: a stream the client reset still counts until the app is done with
    /// it (rapid reset, CVE-2023-44487).
    pub(crate) max_streams: u32,
    /// The largest header list a client may send, decoded (`SETTINGS_MAX_HEADER_LIST_SIZE`):
    /// past it 431, far past it GOAWAY (HPACK bombs, CONTINUATION floods, CVE-2024-27316).
    pub(crate) max_header_list: u32,
    /// SETTINGS and PING frames a client may send in one second before it is cut off with
    /// GOAWAY(ENHANCE_YOUR_CALM) (`calm.rs`).
    pub(crate) max_control_frames: u32,
}

impl Limits {
    /// The options' defaults (`--http2-max-streams` and the rest take theirs from here).
    pub(crate) const DEFAULT: Limits = Limits {
        max_streams: 100,
        max_header_list: 64 * 1024,
        max_control_frames: 1000,
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// What a serving thread takes from the HTTP/2 queue.
pub(crate) enum Job {
    /// A stream the HTTP/2 thread accepted.
    New(Box<stream::StreamJob>),
    /// A parked stream that was woken.
    Resume(Box<park::ParkedStream>),
}

/// How many queued streams a serving thread runs in a row before it goes back to its events.
const STREAMS_PER_TURN: usize = 16;

/// Runs `job` on this serving thread, then the streams queued meanwhile (up to
/// `STREAMS_PER_TURN` in all): each taken this way saves a wake-up and an `epoll_wait`, and the
/// HTTP/2 thread gets their responses to write in one go.
pub(crate) fn serve_stream(
    job: Job,
    shared: &super::Shared,
    scratch: &mut super::serve::ThreadScratch,
) {
    let queue = match job {
        Job::New(ref job) => Arc::clone(&job.queue),
        Job::Resume(parked) => return stream::resume(parked, shared, scratch),
    };
    let others = shared.config.threads > 1;
    let mut job = job;
    for ran in 1.. {
        match job {
            Job::New(job) => stream::start(*job, shared, scratch),
            Job::Resume(parked) => stream::resume(parked, shared, scratch),
        }
        if ran == STREAMS_PER_TURN {
            break;
        }
        match queue.pop(others) {
            Some(next) => job = next,
            None => return,
        }
    }
    if !lock(&queue.jobs).is_empty() {
        // The rest wait for this thread's next turn, or another thread.
        queue.slots.wake_a_thread();
    }
}

/// The connection preface's first line (RFC 9113 §3.4); as an HTTP/1.x head it is
/// `PRI * HTTP/2.0` and an empty line, which the head scanner finds whole.
const PREFACE_START: &[u8] = b"PRI * HTTP/2.0\r\n";

/// The ALPN name of HTTP/2 over TLS (RFC 9113 §3.2).
const ALPN_H2: &[u8] = b"h2";

/// The HTTP/2 thread runs new streams itself, with no hop to a serving thread and back: for a
/// deferred app that declared it never waits (`WS_APP_NONBLOCKING`, as webserver-tower's apps
/// do), whose calls need no lock, with no `--static` (a static answer waits for the client's
/// window). A stream that parks resumes on a serving thread, as any other.
fn runs_streams_inline(shared: &super::Shared) -> bool {
    shared.app.never_blocks() && shared.app_lock.is_none() && shared.config.statics.is_none()
}

/// The HTTP/2 thread's index among the app threads (its `--timeout` slot), after the serving
/// threads'.
pub(crate) fn thread_index(config: &super::Config) -> usize {
    config.threads.max(1)
}

/// The connection serves HTTP/2 (`--http2 on`, or its listener's `h2` option).
pub(crate) fn serves_http2(options: ListenerOptions, config: &super::Config) -> bool {
    config.http2 || options.http2
}

/// The connection opened with HTTP/2's preface where HTTP/2 is served: hand it over.
pub(crate) fn wanted(conn: &Conn, config: &super::Config) -> bool {
    conn.is_fresh()
        && conn.input().starts_with(PREFACE_START)
        && serves_http2(conn.listener_options(), config)
}

/// `config` offering `h2` before what it offered (ALPN lists the server's preference first).
pub(crate) fn offer_h2(config: &Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::clone(config);
    config.alpn_protocols.insert(0, ALPN_H2.to_vec());
    Arc::new(config)
}

/// What the HTTP/2 thread and the serving threads share.
pub(super) struct Queue {
    /// Streams accepted and not yet taken by a serving thread, oldest first.
    jobs: Mutex<VecDeque<Job>>,
    /// The connections' slots (released when one ends) and the eventfd that wakes a thread.
    slots: Arc<Slots>,
    /// A drain began: connections send GOAWAY and take no new streams.
    draining: AtomicBool,
    /// The wakes of streams that may park (ABI 1.1 apps), for `cancel_parked`; an ended
    /// stream's is dropped.
    parkable: Mutex<Vec<std::sync::Weak<park::StreamWake>>>,
    /// The HTTP/2 thread's runtime, once it runs: where the tails of responses a client's
    /// window holds back are sent from (`tail.rs`).
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
}

impl Queue {
    /// The HTTP/2 thread's runtime (streams come only once it runs).
    fn runtime(&self) -> tokio::runtime::Handle {
        self.runtime
            .get()
            .expect("streams come from the HTTP/2 thread's runtime")
            .clone()
    }

    fn push(&self, job: Job) {
        self.push_all(std::iter::once(job));
    }

    /// Queues `jobs` with one lock and at most one wake-up: only a queue that was empty needs
    /// one. Whoever takes a job from a queue that still has more wakes another thread
    /// (`Http2::pop_job`, `serve_stream`), so a job is never left without a thread coming.
    fn push_all(&self, jobs: impl IntoIterator<Item = Job>) {
        let mut queued = lock(&self.jobs);
        let was_empty = queued.is_empty();
        queued.extend(jobs);
        let wake = was_empty && !queued.is_empty();
        drop(queued);
        if wake {
            self.slots.wake_a_thread();
        }
    }

    /// The next job; if more are left and `others` serving threads may be idle, one is woken
    /// to take them meanwhile (the job taken may be a long one).
    fn pop(&self, others: bool) -> Option<Job> {
        let mut jobs = lock(&self.jobs);
        let job = jobs.pop_front()?;
        let more = !jobs.is_empty();
        drop(jobs);
        if more && others {
            self.slots.wake_a_thread();
        }
        Some(job)
    }
}

/// The HTTP/2 side of one serving process: its thread, and the queue of streams it accepted.
pub(crate) struct Http2 {
    queue: Arc<Queue>,
    handoffs: Mutex<Option<tokio::sync::mpsc::UnboundedSender<driver::Handoff>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Wakes the HTTP/2 thread's connections (a drain began).
    drain: tokio::sync::watch::Sender<bool>,
}

impl Http2 {
    /// Starts the HTTP/2 thread.
    pub(crate) fn start(slots: &Arc<Slots>, shared: &Arc<super::Shared>) -> std::io::Result<Http2> {
        let config = &shared.config;
        let queue = Arc::new(Queue {
            jobs: Mutex::default(),
            slots: Arc::clone(slots),
            draining: AtomicBool::new(false),
            parkable: Mutex::default(),
            runtime: std::sync::OnceLock::new(),
        });
        let (handoffs, received) = tokio::sync::mpsc::unbounded_channel();
        let (drain, drain_seen) = tokio::sync::watch::channel(false);
        let settings = driver::Settings::of(config);
        let thread_queue = Arc::clone(&queue);
        let inline = runs_streams_inline(shared).then(|| Arc::clone(shared));
        let thread = std::thread::Builder::new()
            .name("http2".into())
            .spawn(move || driver::run(received, thread_queue, settings, drain_seen, inline))?;
        Ok(Http2 {
            queue,
            handoffs: Mutex::new(Some(handoffs)),
            thread: Mutex::new(Some(thread)),
            drain,
        })
    }

    /// Hands `conn` (its first head the preface) over to the HTTP/2 thread; its slot stays
    /// taken until the HTTP/2 connection ends.
    pub(crate) fn hand_over(&self, mut conn: Box<Conn>, epoll: &Epoll) {
        if conn.is_registered() {
            // Its events are the HTTP/2 thread's from now on (the descriptor is duplicated
            // below, so closing this one would not remove the registration).
            if let Err(e) = epoll.delete(conn.stream_mut().as_fd()) {
                log::debug!("{}: cannot unregister for HTTP/2: {e}", conn.peer());
            }
        }
        let handoff = match driver::Handoff::take(&mut conn) {
            Ok(handoff) => handoff,
            Err(e) => {
                log::warn!("{}: cannot hand the connection to HTTP/2: {e}", conn.peer());
                self.queue.slots.close(conn);
                return;
            }
        };
        // The slot stays busy; `Conn`'s own descriptor closes here.
        drop(conn);
        let sent = lock(&self.handoffs)
            .as_ref()
            .map(|handoffs| handoffs.send(handoff));
        match sent {
            Some(Ok(())) => {}
            Some(Err(tokio::sync::mpsc::error::SendError(handoff))) => {
                self.queue.slots.release(handoff.token)
            }
            None => {}
        }
    }

    /// The next stream a serving thread should run; another thread is woken if more wait.
    pub(crate) fn pop_job(&self) -> Option<Job> {
        self.queue.pop(true)
    }

    /// Streams wait for a serving thread.
    pub(crate) fn has_jobs(&self) -> bool {
        !lock(&self.queue.jobs).is_empty()
    }

    /// Queues the parked streams due by `by` (their `--timeout`; all, without `by`) for a
    /// serving thread, which ends each with `cancel` (504, 503) through the app's `close`; how
    /// many there were.
    pub(crate) fn cancel_parked(
        &self,
        cancel: crate::app::call::Cancel,
        by: Option<std::time::Instant>,
    ) -> usize {
        park::cancel_parked(&self.queue, cancel, by)
    }

    /// A drain began: every HTTP/2 connection sends GOAWAY, finishes its streams and closes.
    pub(crate) fn begin_drain(&self) {
        self.queue.draining.store(true, Ordering::SeqCst);
        self.drain.send_replace(true);
    }

    /// Ends the HTTP/2 thread (the connections still open are closed) and waits for it.
    pub(crate) fn stop(&self) {
        // Closing the channel ends the thread's runtime.
        lock(&self.handoffs).take();
        if let Some(thread) = lock(&self.thread).take() {
            if thread.join().is_err() {
                log::error!("the HTTP/2 thread panicked");
            }
        }
        // Streams nobody took: their connections are gone.
        lock(&self.queue.jobs).clear();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
