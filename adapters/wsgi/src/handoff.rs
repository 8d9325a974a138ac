//! Whoever holds the GIL runs the next request: a request that arrives while another serving
//! thread is running the app is queued instead of waiting for the GIL, and the thread that holds
//! the GIL runs it before it lets go.
//!
//! Why: with `--threads 4` and a GIL-bound app (Flask), a serving thread that read a request
//! and parked until the GIL came its way was most of the worker's context switches (81–83 %),
//! and Python ran about a third slower after each switch. granian's threads take requests from
//! one queue, so the thread that has the GIL runs the next one. Here a serving thread reads a
//! request; if a thread is running the app ([`Holding`]), the request is queued ([`queue`]),
//! `call` returns at once with a body that pends (ABI 1.1 deferred), and the serving thread goes
//! back to its connections. Before a holder releases the GIL it runs queued requests ([`drain`]),
//! up to [`BATCH`] of them or [`BATCH_TIME`], so that its own response is not held long. Each
//! such request's app runs on the holder's thread with what it asks of the server recorded
//! ([`crate::recording`]), and its waker has the server call its `next` on a serving thread,
//! which sends the recording ([`DeferredBody`]): the ABI answers host I/O only there. Once the
//! holder's own request needs no more Python, that serving thread is the holder itself (ABI 1.3
//! `waker_wake_here`): it sends the responses of what it ran when it is back in its event loop,
//! with no other thread woken for each. Without that, the waits only moved from the GIL to
//! `epoll_wait` (bench/RESULTS.md).
//!
//! Only for an app whose calls compute long enough ([`auto`]: the Flask hello, not the bare
//! hello, whose tail the queue only lengthened), unless `WEBSERVER_WSGI_HANDOFF=1` (every app) or
//! `0` (none).
//!
//! Only requests without a body are queued (no `Content-Length` beyond 0, no
//! `Transfer-Encoding`, HTTP/1.x): their app reads an empty `wsgi.input` without the server.
//!
//! Nothing is left in the queue: a holder that leaves last with requests still queued wakes the
//! first, whose `next` runs it (and then the rest) on its own thread. A holder that will not
//! take queued requests soon (one long request, or blocked without the GIL) is the
//! [`watchdog`]'s to find.

mod auto;
mod watchdog;

pub(crate) use auto::{calls_are_short, CallTimer};

use crate::body::{BodyState, Prepared};
use crate::config::Handoff;
use crate::exchange::Exchange;
use crate::WsgiApp;
use app_abi::raw::{WsBytes, WsRequest, WS_ERR_STATE, WS_LENGTH_UNKNOWN, WS_PENDING};
use app_abi::{LogLevel, Logger, Request, Waker};
use pyo3::prelude::*;
use python_embed::python_thread;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use watchdog::Holder;

/// At most this many queued requests run in one GIL hold after the holder's own.
const BATCH: usize = 8;
/// A holder takes no further queued request after this long in [`drain`].
const BATCH_TIME: Duration = Duration::from_micros(1000);
/// What the queue did, for the debug line at `shutdown` ([`stop`]).
struct Counts {
    started: AtomicU64,
    queued: AtomicU64,
    by_holder: AtomicU64,
    woken: AtomicU64,
    stuck: AtomicU64,
}

static COUNTS: Counts = Counts {
    started: AtomicU64::new(0),
    queued: AtomicU64::new(0),
    by_holder: AtomicU64::new(0),
    woken: AtomicU64::new(0),
    stuck: AtomicU64::new(0),
};

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Whether the first request run from the queue was logged.
static SAID_SO: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The queue and who holds the GIL to drain it.
struct Line {
    jobs: VecDeque<Arc<Job>>,
    /// Serving threads between starting a request and leaving the GIL ([`Holding`]).
    holders: Vec<Holder>,
    /// When a queued request was last taken, or the queue last became non-empty.
    progress: Option<Instant>,
    /// When a request was last queued.
    queued: Option<Instant>,
    /// Requests are not queued before this.
    live_until: Option<Instant>,
    watchdog: Option<JoinHandle<()>>,
    watching: watchdog::Watching,
    stopping: bool,
}

static LINE: Mutex<Line> = Mutex::new(Line {
    jobs: VecDeque::new(),
    holders: Vec::new(),
    progress: None,
    queued: None,
    live_until: None,
    watchdog: None,
    watching: watchdog::Watching::Looking,
    stopping: false,
});
static WATCH: Condvar = Condvar::new();

fn line() -> MutexGuard<'static, Line> {
    // Consistent after every statement: a panic elsewhere cannot leave it half-updated.
    LINE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A serving thread is running the app (from before it lines up for the GIL until it has
/// released it): requests arriving meanwhile are queued for it. Dropping it wakes the first
/// queued request if no holder is left to run it.
pub(crate) struct Holding {
    /// This thread, as listed in the line; `None` when requests are not queued at all: nothing
    /// to count or wake.
    me: Option<Holder>,
    /// This thread's own request needs no more of the app ([`Holding::own_request_done`]).
    own_done: std::cell::Cell<bool>,
}

impl Holding {
    pub(crate) fn begin() -> Holding {
        let own_done = std::cell::Cell::new(false);
        if !ENABLED.load(Ordering::Relaxed) {
            return Holding { me: None, own_done };
        }
        count(&COUNTS.started);
        let me = Holder::current();
        line().holders.push(me.clone());
        Holding {
            me: Some(me),
            own_done,
        }
    }

    /// This thread has the GIL for its request: if it blocks from now on until it leaves, it is
    /// blocked in the app (the [`watchdog`] tells that from waiting for the GIL).
    pub(crate) fn in_app(&self) {
        if let Some(me) = &self.me {
            me.enter_app();
        }
    }

    /// The request this thread started has nothing of the app left to run (its body is a list
    /// or was iterated to its end, or it failed): once the GIL is let go the thread only sends
    /// it, so the requests it ran from the queue are woken for it to send too (ABI 1.3
    /// `waker_wake_here`), not for another serving thread woken each.
    pub(crate) fn own_request_done(&self) {
        self.own_done.set(true);
    }
}

thread_local! {
    /// Requests this thread ran from the queue, to be woken when it leaves ([`Job::finish`]).
    static TO_WAKE: std::cell::RefCell<Vec<Arc<Job>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Drop for Holding {
    fn drop(&mut self) {
        let Some(me) = &self.me else {
            return;
        };
        me.leave_app();
        // Woken together, with the GIL released: a serving thread that wakes for one finds the
        // others ready too, and none waits for the GIL to send its response.
        let here = self.own_done.get();
        for job in TO_WAKE.with(|jobs| std::mem::take(&mut *jobs.borrow_mut())) {
            if here {
                job.wake_here();
            } else {
                job.wake();
            }
        }
        let orphan = {
            let mut line = line();
            if let Some(at) = line.holders.iter().position(|h| h.is(me)) {
                line.holders.swap_remove(at);
            }
            if line.holders.is_empty() {
                line.jobs.front().filter(|job| job.mark_rescued()).cloned()
            } else {
                None
            }
        };
        if let Some(job) = orphan {
            // This thread runs it once back, if it may (see above): no other woken for it.
            if here {
                job.wake_here();
            } else {
                job.wake();
            }
        }
    }
}

enum State {
    Queued,
    /// Its app is running on some thread.
    Running,
    /// Its app ran: the body to send (or the failure's code).
    Done(Result<Prepared, i32>),
    /// Its `next` took the outcome.
    Taken,
    /// Its `close` came first: it never runs.
    Cancelled,
}

/// A queued request.
pub(crate) struct Job {
    wsgi: *const WsgiApp,
    raw: *const WsRequest,
    exchange: Arc<Exchange>,
    waker: Waker,
    state: Mutex<State>,
    ran: Condvar,
    rescued: std::sync::atomic::AtomicBool,
}

// SAFETY: `wsgi` lives until `shutdown`, after the last `close`; `raw` (with its environ) until
// the request's `close` returns, which waits while the job runs (`DeferredBody::close`) and
// stops it from running later; the app reads them only with the GIL, one thread at a time. The
// exchange calls the host only on the request's own thread (its recording, `Exchange::replay`).
unsafe impl Send for Job {}
// SAFETY: as for Send; the mutable state is behind a mutex and an atomic.
unsafe impl Sync for Job {}

impl Job {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first wake-up by a holder leaving or the watchdog (later ones are not needed: the
    /// request runs on whichever thread its `next` comes to).
    fn mark_rescued(&self) -> bool {
        !self.rescued.swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    fn wake(&self) {
        self.waker.wake();
    }

    /// [`Job::wake`], answered by this serving thread once it is back from its own request.
    fn wake_here(&self) {
        self.waker.wake_here();
    }

    /// Queued → Running, for the thread that will run it.
    fn claim(&self) -> bool {
        let mut state = self.state();
        if matches!(*state, State::Queued) {
            *state = State::Running;
            true
        } else {
            false
        }
    }

    /// Runs the app for this request, with its asks recorded.
    fn run(&self, py: Python<'_>) -> Result<Prepared, i32> {
        let _active = self.exchange.enter();
        // SAFETY: see `unsafe impl Send for Job`: both are alive while the job runs.
        let (wsgi, raw) = unsafe { (&*self.wsgi, &*self.raw) };
        crate::run(py, wsgi, raw, &self.exchange)
    }

    /// The app ran: the outcome is kept for the request's `next`, which is woken once this
    /// thread has let the GIL go ([`Holding`]'s drop), all the batch's requests at once.
    fn finish(self: &Arc<Self>, outcome: Result<Prepared, i32>) {
        *self.state() = State::Done(outcome);
        self.ran.notify_all();
        TO_WAKE.with(|jobs| jobs.borrow_mut().push(Arc::clone(self)));
    }
}

/// What `clock` (a thread's CPU-time clock) reads; `None` if it cannot be read (a stale clock id
/// of a thread that is gone only fails).
fn read_clock(clock: libc::clockid_t) -> Option<std::time::Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let read = unsafe { libc::clock_gettime(clock, &mut now) };
    (read == 0).then(|| std::time::Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
}

/// Whether requests are queued at all (not `WEBSERVER_WSGI_HANDOFF=0`).
static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
pub(crate) fn enable(mode: Handoff) {
    ENABLED.store(mode != Handoff::Off, Ordering::Relaxed);
    auto::enable(mode == Handoff::Auto);
}

/// The request's `call` found the app busy and queued it: `call` returns its body.
pub(crate) fn queue<'a>(
    wsgi: &WsgiApp,
    raw: &WsRequest,
    vars: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    exchange: &Arc<Exchange>,
) -> Option<Box<DeferredBody>> {
    if !ENABLED.load(Ordering::Relaxed) || !auto::worth_queueing() {
        return None;
    }
    {
        let line = line();
        let now = Instant::now();
        if line.holders.is_empty() || line.live_until.is_some_and(|until| now < until) {
            return None;
        }
    }
    if !without_body(vars) {
        return None;
    }
    // SAFETY: `raw` is the request of this `call`, on its thread; its environ and `io` are
    // valid until its body's close.
    let waker = unsafe { Request::from_raw(raw) }.waker()?;
    exchange.record(crate::recording::Recording::default());
    let job = Arc::new(Job {
        wsgi,
        raw,
        exchange: Arc::clone(exchange),
        waker,
        state: Mutex::new(State::Queued),
        ran: Condvar::new(),
        rescued: std::sync::atomic::AtomicBool::new(false),
    });
    let orphan = {
        let mut line = line();
        let now = Instant::now();
        if line.jobs.is_empty() {
            line.progress = Some(now);
        }
        line.queued = Some(now);
        count(&COUNTS.queued);
        line.jobs.push_back(Arc::clone(&job));
        watchdog::queued(&mut line, now, exchange.logger());
        // The holder seen above may have left meanwhile.
        (line.holders.is_empty() && job.mark_rescued()).then(|| Arc::clone(&job))
    };
    if let Some(job) = orphan {
        job.wake();
    }
    Some(Box::new(DeferredBody { job, body: None }))
}

/// No request body: no `Content-Length` beyond 0, no `Transfer-Encoding`, and HTTP/1.x (an
/// HTTP/2 request's body need not be announced).
fn without_body<'a>(vars: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> bool {
    let mut http1 = false;
    for (name, value) in vars {
        match name {
            b"CONTENT_LENGTH" if value != b"0" => return false,
            b"HTTP_TRANSFER_ENCODING" => return false,
            b"SERVER_PROTOCOL" => http1 = value.starts_with(b"HTTP/1."),
            _ => {}
        }
    }
    http1
}

/// Runs queued requests in this GIL hold (see the module docs).
pub(crate) fn drain(py: Python<'_>) {
    let started = Instant::now();
    for _ in 0..BATCH {
        let job = {
            let mut line = line();
            loop {
                match line.jobs.pop_front() {
                    None => return,
                    Some(job) if job.claim() => {
                        line.progress = Some(Instant::now());
                        break job;
                    }
                    Some(_) => {}
                }
            }
        };
        // A panic must not leave the job running for ever: its `close` would wait for it.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(py)))
            .unwrap_or(Err(app_abi::raw::WS_ERR_APP));
        job.finish(outcome);
        count(&COUNTS.by_holder);
        if !SAID_SO.swap(true, std::sync::atomic::Ordering::AcqRel) {
            job.exchange.log(
                LogLevel::Debug,
                "a request that came while a serving thread ran the app was queued for it and \
                 run by it (later ones are not logged)",
            );
        }
        if started.elapsed() >= BATCH_TIME {
            return;
        }
    }
}

/// Takes `job` out of the queue (its `next` runs it, or its `close` cancels it).
fn unqueue(job: &Arc<Job>) {
    let mut line = line();
    if let Some(at) = line.jobs.iter().position(|j| Arc::ptr_eq(j, job)) {
        line.jobs.remove(at);
        line.progress = Some(Instant::now());
    }
}

/// Stops the watchdog (at `shutdown`: after the last request, so the queue is empty), and says
/// in a debug line what the queue did.
pub(crate) fn stop(logger: Logger) {
    let n = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let calls = auto::average()
        .map(|average| {
            format!(
                "; the app's calls lately took {:.1} µs of CPU on average",
                average.as_nanos() as f64 / 1000.0
            )
        })
        .unwrap_or_default();
    logger.debug(&format!(
        "WSGI requests: {} GIL holds for a request (each may run queued ones), {} queued for \
         the thread running the app ({} run by it, {} by their own thread once woken), {} times \
         stuck{calls}",
        n(&COUNTS.started),
        n(&COUNTS.queued),
        n(&COUNTS.by_holder),
        n(&COUNTS.woken),
        n(&COUNTS.stuck),
    ));
    let handle = {
        let mut line = line();
        line.stopping = true;
        WATCH.notify_all();
        line.watchdog.take()
    };
    if let Some(handle) = handle {
        let _ = handle.join();
    }
    // A later generation in this process starts its own.
    line().stopping = false;
}

/// What `ctx` of a queued request's body points to.
pub(crate) struct DeferredBody {
    job: Arc<Job>,
    /// Once the recording was sent: the app's body, pulled as any.
    body: Option<Box<BodyState>>,
}

impl crate::ServerBody for DeferredBody {
    /// The server's `next`: `WS_PENDING` while the app has not run; runs it here if it is
    /// still queued once woken by a leaving holder or the watchdog; sends the recording once it
    /// ran.
    fn next_chunk(&mut self, chunk: &mut WsBytes) -> i32 {
        if let Some(body) = &mut self.body {
            return body.next_chunk(chunk);
        }
        let job = Arc::clone(&self.job);
        let outcome = {
            let mut state = job.state();
            match std::mem::replace(&mut *state, State::Taken) {
                // The `next` right after `call`, or a spurious one: the holder runs it.
                State::Queued if !job.rescued.load(std::sync::atomic::Ordering::Acquire) => {
                    *state = State::Queued;
                    return WS_PENDING;
                }
                State::Queued => None,
                State::Running => {
                    *state = State::Running;
                    return WS_PENDING;
                }
                State::Done(outcome) => Some(outcome),
                other => {
                    *state = other;
                    return WS_ERR_STATE;
                }
            }
        };
        let outcome = outcome.unwrap_or_else(|| {
            count(&COUNTS.woken);
            unqueue(&job);
            let holding = Holding::begin();
            python_thread::with_gil(|py| {
                holding.in_app();
                let outcome = job.run(py);
                if outcome.as_ref().map_or(true, |p| p.body.is_complete()) {
                    holding.own_request_done();
                }
                drain(py);
                outcome
            })
        });
        let prepared = match outcome {
            Ok(prepared) => prepared,
            Err(code) => return code,
        };
        let length = (prepared.length_hint != WS_LENGTH_UNKNOWN).then_some(prepared.length_hint);
        let rc = {
            let _active = job.exchange.enter();
            job.exchange.replay(length)
        };
        let body = self.body.insert(prepared.body);
        if rc != app_abi::raw::WS_OK {
            return rc;
        }
        body.next_chunk(chunk)
    }

    /// The server's `close`: a request still queued never runs; one running is waited for
    /// (its app reads the request, which `close` ends); then the app's body is closed.
    fn close(self: Box<Self>) {
        let DeferredBody { job, body } = *self;
        if let Some(body) = body {
            body.close();
            return;
        }
        let outcome = {
            let mut state = job.state();
            loop {
                match std::mem::replace(&mut *state, State::Cancelled) {
                    State::Queued => break None,
                    State::Running => {
                        *state = State::Running;
                        state = job.ran.wait(state).unwrap_or_else(|e| e.into_inner());
                    }
                    State::Done(outcome) => break Some(outcome),
                    State::Taken | State::Cancelled => break None,
                }
            }
        };
        unqueue(&job);
        if let Some(Ok(prepared)) = outcome {
            prepared.body.close();
        }
    }
}
