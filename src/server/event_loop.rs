//! The serving threads and their coordinator.
//!
//! Every thread waits in `epoll_wait` on one shared, edge-triggered epoll instance; the kernel
//! wakes one waiter per event (exclusive wake-ups), and that thread serves the connection itself:
//! reads the head, calls the app, writes, serves what is pipelined, and parks the connection when
//! the socket is empty. There is no hand-off between threads per request (no futex, no context
//! switch), idle connections hold no thread, a slow client never holds one while it dribbles its
//! head (reads never wait), and a blocking app call holds only its own thread while the others
//! keep answering events. Of the events one `epoll_wait` returns, a thread serves the first;
//! as many as there are idle threads are passed on to them (a listener by re-arming its
//! registration, a connection through the slot table's ready queue: `Slots::pass_on`), and
//! the rest wait in a backlog (`backlog.rs`) that every thread serves from, oldest first, before
//! it waits again — so connections are served in the order their events came.
//!
//! Every listener is registered on the same epoll instance (tokens from `FIRST_LISTENER`); a
//! connection remembers the options of the listener it came from.
//!
//! The calling thread coordinates: it sweeps deadlines, watches `--timeout` (harakiri),
//! re-arms the listeners while accepting rests for lack of descriptors (`accept_pause.rs`), gives
//! freed memory back to the kernel after a burst or once the worker goes quiet (`heap_trim.rs`),
//! and drains on shutdown; it never runs app code, so it reacts at once. Once no connection is
//! open it stops the threads (a flag, and a wake-up on the eventfd that each waking thread
//! passes on) and joins them. The epoll instance belongs to `Loop`, which every thread holds,
//! so no thread ever waits on a closed descriptor — not even one left inside the app when the
//! graceful timeout runs out (`Ended::Abandoned`).
//!
//! Deferred requests (ABI 1.1, `deferred.rs`) park in their connection's slot, holding no
//! thread. A wake queues one on the slot table's ready queue and raises the eventfd; the thread
//! that takes the event resumes it. The coordinator cancels parked requests past `--timeout`
//! and, when the graceful timeout runs out, every one still parked (a serving thread calls the
//! app's `close`); only requests inside the app on a thread are ever abandoned.

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::accept_pause::AcceptPause;
use super::backlog::Backlog;
use super::conn::Conn;
use super::deferred;
use super::h2::{self, Http2};
use super::heap_trim::HeapTrim;
use super::listener::Listener;
use super::serve::{self, After, ThreadScratch};
use super::slots::{Ready, Slots, Taken, Token};
use super::{Shared, Shutdown};
use crate::app::call::Cancel;
use crate::http::response::encode_error;
use crate::sys::epoll::{Epoll, Events, Waker};
use crate::sys::process::exit_now;

mod accept;
use accept::accept_all;

const WAKER: Token = Token(1);
/// Listener `i`'s token is `FIRST_LISTENER + i`: far above any connection's.
const FIRST_LISTENER: usize = usize::MAX / 2;

/// The index of the listener `token` stands for, if it stands for one.
fn listener_index(token: Token) -> Option<usize> {
    token.0.checked_sub(FIRST_LISTENER)
}

/// How often parked connections are checked against their deadlines; also the longest a
/// serving thread waits in `epoll_wait` before it looks at the stop flag again.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// After the graceful timeout cancelled the parked requests, how long their `close` may take
/// on the serving threads before the process gives up on them too; also how long upgraded
/// connections wait for their clients' replies to the close (1001) sent to them then.
const PARKED_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Events taken per `epoll_wait`.
const EVENT_BATCH: usize = 64;

/// Connections one listener event may serve on the accepting thread before the rest are parked
/// (`accept_all`): enough to skip the registration of a burst, few enough that the events of
/// connections already open do not wait long behind new ones.
const INLINE_ACCEPTS: usize = EVENT_BATCH;

/// After `epoll_wait` fails (it cannot, short of a kernel out of memory), wait this long before
/// trying again rather than spin.
const EPOLL_ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Before accepting, how often the coordinator checks whether every thread waits for events,
/// and how long it waits for that at most.
const START_CHECK_EVERY: Duration = Duration::from_micros(200);
const START_WAIT_LIMIT: Duration = Duration::from_secs(1);

/// What the serving threads share besides `Shared`. The epoll instance lives here, so it stays
/// open as long as any thread that waits on it (each holds an `Arc<Loop>`).
struct Loop {
    epoll: Epoll,
    /// Each `None` once draining: the sockets are closed so no new connection can reach this
    /// process. One lock each, so accepting on one does not wait for another.
    listeners: Vec<Mutex<Option<Listener>>>,
    /// The connections, the ready queue (woken deferred requests, passed-on events) and the
    /// eventfd (registered edge-triggered: each wake wakes one waiting thread). Shared with the
    /// apps' wakers.
    slots: Arc<Slots>,
    stop: AtomicBool,
    /// Threads blocked in `epoll_wait`: free to take events this thread passes on.
    waiting: AtomicUsize,
    /// Events taken by a thread but not served by it, oldest first (`backlog.rs`).
    backlog: Backlog,
    /// Accepting rests, and is retried on a timer, while the process is out of descriptors.
    accept_pause: AcceptPause,
    /// The HTTP/2 thread and the streams it accepted (`--http2`).
    http2: Option<Http2>,
}

/// How the serving threads ended.
pub(crate) enum Ended {
    /// Every serving thread was joined: none can call into the app any more.
    Joined,
    /// The graceful timeout ran out while `open` connections were still being served: their
    /// threads may be inside the app, and were left running (told to stop once they can).
    Abandoned { open: usize },
}

/// Serve on `listeners` until `shutdown` is triggered and every connection has ended (or the
/// graceful timeout ran out). On an error every thread already started has been joined.
pub(crate) fn run(
    listeners: Vec<Listener>,
    shared: &Arc<Shared>,
    shutdown: &Shutdown,
) -> io::Result<Ended> {
    let slots = Arc::new(Slots::new(Waker::new()?));
    let http2 = match listeners
        .iter()
        .any(|listener| h2::serves_http2(listener.options(), &shared.config))
    {
        true => Some(Http2::start(&slots, shared)?),
        false => None,
    };
    let shared_loop = Arc::new(Loop {
        epoll: Epoll::new()?,
        listeners: listeners
            .into_iter()
            .map(|listener| Mutex::new(Some(listener)))
            .collect(),
        slots,
        stop: AtomicBool::new(false),
        waiting: AtomicUsize::new(0),
        backlog: Backlog::default(),
        accept_pause: AcceptPause::default(),
        http2,
    });
    shared_loop
        .epoll
        .add(shared_loop.slots.waker().as_fd(), WAKER.event_data())?;
    let mut threads = Vec::with_capacity(shared.config.threads.max(1));
    for index in 0..shared.config.threads.max(1) {
        let (shared, thread_loop) = (Arc::clone(shared), Arc::clone(&shared_loop));
        let spawned = std::thread::Builder::new()
            .name(format!("serve-{index}"))
            .spawn(move || serve_events(index, &thread_loop, &shared));
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                stop_and_join(&shared_loop, threads);
                return Err(e);
            }
        }
    }

    // Accept only once every thread waits for events: a burst of first connections then
    // spreads over all of them instead of queueing behind the first thread's app calls.
    let started = Instant::now();
    while shared_loop.waiting.load(Ordering::Relaxed) < threads.len()
        && started.elapsed() < START_WAIT_LIMIT
    {
        std::thread::sleep(START_CHECK_EVERY);
    }
    let registered = shared_loop
        .listeners
        .iter()
        .enumerate()
        .try_for_each(|(index, listener)| match lock(listener).as_ref() {
            Some(listener) => shared_loop
                .epoll
                .add(listener.as_fd(), Token(FIRST_LISTENER + index).event_data()),
            None => Ok(()),
        });
    if let Err(e) = registered {
        stop_and_join(&shared_loop, threads);
        return Err(e);
    }

    let mut stop_by = None;
    let mut parked_cancelled = false;
    let mut heap_trim = HeapTrim::new();
    loop {
        shutdown.wait(SWEEP_EVERY);
        let now = shared.tick();
        if let Some(running) = shared.overdue() {
            harakiri(running);
        }
        // Before the expiry: the idle connections a drain closes go at once.
        if stop_by.is_none() && shutdown.is_requested() {
            stop_by = Some(begin_drain(&shared_loop, shared));
        }
        for mut conn in shared_loop.slots.expired(now) {
            if conn.has_request_waiting() {
                // Its client sent a request in time, but every serving thread was busy: it is
                // not idle, and closing it would drop that request unanswered.
                shared_loop.slots.serve_later(conn);
            } else {
                time_out(&mut conn);
                shared_loop.slots.close(conn);
            }
        }
        if shared_loop.accept_pause.retry_due(now) {
            // The queued connections raise no new edge on their own: report them again.
            for index in 0..shared_loop.listeners.len() {
                pass_on(Token(FIRST_LISTENER + index), &shared_loop);
            }
        }
        // Past --timeout, or past --io-timeout while its output waits for a client that does
        // not read (which applies with --timeout off too).
        shared_loop.slots.cancel_parked(Cancel::TimedOut, Some(now));
        if let Some(http2) = &shared_loop.http2 {
            http2.cancel_parked(Cancel::TimedOut, Some(now));
        }
        // Writes the summaries of repeated log lines whose window is over (crate::log_limit).
        log::logger().flush();
        if heap_trim.due(now, shared_loop.slots.open(), shared.served()) {
            let released = crate::sys::heap::release_free_memory();
            log::debug!("gave the allocator's free memory back to the kernel: {released}");
        }
        if let Some(deadline) = stop_by {
            if shared_loop.slots.open() == 0 {
                break;
            }
            if now >= deadline && !parked_cancelled && closes_at_deadline(&shared_loop) {
                parked_cancelled = true;
                // Two sweeps more than the closes' grace: the sweep that ends a connection
                // whose grace ran out comes before the process gives up on it.
                stop_by = Some(now + PARKED_CLOSE_GRACE + 2 * SWEEP_EVERY);
            } else if now >= deadline {
                // Threads inside the app cannot be joined; they keep the epoll instance (and
                // the app) alive until the process exits. Idle ones stop now.
                shared_loop.stop.store(true, Ordering::SeqCst);
                wake_one(&shared_loop);
                return Ok(Ended::Abandoned {
                    open: shared_loop.slots.open(),
                });
            }
        }
    }
    stop_and_join(&shared_loop, threads);
    Ok(Ended::Joined)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The graceful timeout ran out: parked requests and upgraded connections hold no thread, so
/// they are closed (on serving threads) rather than abandoned, and the app can still be shut
/// down cleanly. A WebSocket gets close 1001 ("going away"). False if there were none.
fn closes_at_deadline(shared_loop: &Loop) -> bool {
    let slots = &shared_loop.slots;
    let mut parked = slots.parked() > 0;
    if parked {
        log::warn!("graceful timeout: closing the requests still waiting for the app");
        slots.cancel_parked(Cancel::Stopping, None);
    }
    // HTTP/2 streams parked by the app: their connections end once they are answered (503).
    let streams = shared_loop
        .http2
        .as_ref()
        .map_or(0, |http2| http2.cancel_parked(Cancel::Stopping, None));
    if streams > 0 {
        log::warn!("graceful timeout: closing {streams} HTTP/2 streams still waiting for the app");
        parked = true;
    }
    let upgraded = slots.upgraded();
    if !upgraded.is_empty() {
        log::info!(
            "graceful timeout: closing {} upgraded connections (WebSockets get 1001)",
            upgraded.len()
        );
    }
    let any_upgraded = !upgraded.is_empty();
    for connection in upgraded {
        connection.shut_down(PARKED_CLOSE_GRACE);
        slots.queue_upgraded(connection);
    }
    parked || any_upgraded
}

/// Tell every serving thread to stop and wait until they have.
fn stop_and_join(shared_loop: &Loop, threads: Vec<JoinHandle<()>>) {
    shared_loop.stop.store(true, Ordering::SeqCst);
    // One wake-up suffices: each thread that wakes to the stop passes it on (`serve_events`).
    wake_one(shared_loop);
    for thread in threads {
        if thread.join().is_err() {
            log::error!("a serving thread panicked");
        }
    }
    if let Some(http2) = &shared_loop.http2 {
        http2.stop();
    }
}

/// Wake one thread waiting in `epoll_wait` (the waker is edge-triggered).
fn wake_one(shared_loop: &Loop) {
    shared_loop.slots.wake_a_thread();
}

/// One serving thread: wait for events, serve what they announce, until told to stop.
fn serve_events(index: usize, shared_loop: &Loop, shared: &Shared) {
    let mut scratch = ThreadScratch::new(index);
    crate::stats::serving_thread(index);
    deferred::serving_thread(&shared_loop.slots);
    let mut events = Events::with_capacity(EVENT_BATCH);
    loop {
        // Events a thread took beyond its first are older than any epoll can report now: serve
        // them first, one at a time, so every thread takes the oldest next.
        if let Some(token) = shared_loop.backlog.pop() {
            crate::stats::woke(shared.tick());
            handle(token, shared_loop, shared, &mut scratch);
            serve_woken_here(shared_loop, shared, &mut scratch);
            continue;
        }
        // Access-log lines of the events just served leave in one write.
        crate::logging::flush_thread();
        shared_loop.waiting.fetch_add(1, Ordering::SeqCst);
        if !shared_loop.backlog.is_empty() {
            // Queued after the check above, by a thread that may not have counted this one as
            // waiting: take it rather than sleep beside it.
            shared_loop.waiting.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let waited = shared_loop.epoll.wait(&mut events, SWEEP_EVERY);
        let idle_threads = shared_loop.waiting.fetch_sub(1, Ordering::SeqCst) - 1;
        if shared_loop.stop.load(Ordering::SeqCst) {
            // The wake-up that told this thread to stop tells the next one too.
            wake_one(shared_loop);
            return;
        }
        if let Err(e) = waited {
            log::error!("epoll_wait: {e}");
            std::thread::sleep(EPOLL_ERROR_BACKOFF);
            continue;
        }
        crate::stats::woke(shared.tick());
        let taken = events.len();
        if taken == 0 {
            continue;
        }
        // This thread may block in the app on its first event; events it took beyond that would
        // wait for it, so hand as many as there are idle threads on to them. With every thread
        // busy (the loaded case) nothing is passed on and no syscall is added.
        let kept = taken - idle_threads.min(taken - 1);
        for token in events.tokens().skip(kept) {
            pass_on(Token::from_event(token), shared_loop);
        }
        // The rest of what it kept goes to the backlog, which every thread serves from before
        // it waits again: held here, the last of a batch of 50 would wait for this thread's 49
        // other requests while each other thread served newer ones — a request per thread per
        // turn of the GIL, with a slow app (the WSGI bridge), is what made the Flask hello's
        // p99 three times its median (bench/wsgi_order.py counts such overtaking).
        if kept > 1 {
            shared_loop
                .backlog
                .push(events.tokens().take(kept).skip(1).map(Token::from_event));
            if shared_loop.waiting.load(Ordering::SeqCst) > 0 {
                // A thread began waiting after the count above: it would not see the backlog
                // before its next event.
                wake_one(shared_loop);
            }
        }
        handle(
            Token::from_event(events.token(0)),
            shared_loop,
            shared,
            &mut scratch,
        );
        serve_woken_here(shared_loop, shared, &mut scratch);
    }
}

/// Resume the requests woken on this thread with `waker_wake_here` while it served (their app
/// ran on it, their responses are ready): it sends them itself, where a plain wake would have
/// woken another thread for each.
fn serve_woken_here(shared_loop: &Loop, shared: &Shared, scratch: &mut ThreadScratch) {
    while let Some(conn) = deferred::woken_here() {
        serve(conn, shared_loop, shared, scratch);
    }
}

/// Serve what one event announces.
fn handle(token: Token, shared_loop: &Loop, shared: &Shared, scratch: &mut ThreadScratch) {
    if let Some(index) = listener_index(token) {
        return accept_all(index, shared_loop, shared, scratch);
    }
    match token {
        // A deferred request was woken or cancelled, an event was passed on, an upgraded
        // connection has work, or an HTTP/2 stream waits.
        WAKER => {
            let http2 = shared_loop.http2.as_ref();
            match shared_loop.slots.pop_ready() {
                Some(ready) => {
                    if http2.is_some_and(Http2::has_jobs) {
                        // Its wake-up may have been taken for this connection's.
                        wake_one(shared_loop);
                    }
                    match ready {
                        Ready::Conn(conn) => serve(conn, shared_loop, shared, scratch),
                        Ready::Upgraded(upgraded) => upgraded.ready(shared, scratch.thread),
                    }
                }
                None => {
                    if let Some(job) = http2.and_then(Http2::pop_job) {
                        h2::serve_stream(job, shared, scratch);
                    }
                }
            }
        }
        token => match shared_loop.slots.take(token) {
            Taken::Conn(mut conn) => {
                // The event means input: read before concluding there is none.
                conn.mark_readable();
                serve(conn, shared_loop, shared, scratch);
            }
            Taken::Upgraded(upgraded) => upgraded.ready(shared, scratch.thread),
            Taken::Nothing => {}
        },
    }
}

/// Have another thread serve a source's event: a listener is re-armed so the epoll instance
/// reports it again, a connection is queued for the next free thread.
fn pass_on(token: Token, shared_loop: &Loop) {
    if let Some(index) = listener_index(token) {
        let listener = shared_loop.listeners.get(index).map(lock);
        if let Some(listener) = listener.as_ref().and_then(|l| l.as_ref()) {
            let rearmed = shared_loop
                .epoll
                .modify(listener.as_fd(), token.event_data());
            if let Err(e) = rearmed {
                log::debug!("listener: cannot pass the event on: {e}");
            }
        }
        return;
    }
    match token {
        // Whoever takes the new edge takes the next ready request.
        WAKER => wake_one(shared_loop),
        token => shared_loop.slots.pass_on(token),
    }
}

/// Serve a connection until it must wait for its client (park) or is done (close).
fn serve(mut conn: Box<Conn>, shared_loop: &Loop, shared: &Shared, scratch: &mut ThreadScratch) {
    let slots = &shared_loop.slots;
    loop {
        conn.borrow_buffer(&mut scratch.read_buf);
        let after = if conn.is_parked() {
            deferred::resume(&mut conn, shared, slots, scratch)
        } else {
            serve::serve(&mut conn, shared, slots, scratch)
        };
        conn.return_buffer(&mut scratch.read_buf);
        match after {
            After::Close => return slots.close(conn),
            After::Upgrade(upgraded) => {
                slots.upgrade(conn, &upgraded, &shared_loop.epoll);
                return upgraded.ready(shared, scratch.thread);
            }
            After::Http2 => {
                return match &shared_loop.http2 {
                    Some(http2) => http2.hand_over(conn, &shared_loop.epoll),
                    None => slots.close(conn),
                }
            }
            After::Park => match slots.park(conn, shared, &shared_loop.epoll) {
                // Input arrived while we were busy with it: keep going, unless responses were
                // woken on this thread meanwhile (`waker_wake_here`). Those are ready to send,
                // this connection's next request has yet to run: it goes behind them, or a busy
                // keep-alive or pipelining client would hold them back as long as it sends.
                Some(again) => match deferred::behind_woken_here(again) {
                    Some(again) => conn = again,
                    None => return,
                },
                None => return,
            },
        }
    }
}

/// Stop accepting and let every open connection end: a request in flight finishes (its
/// response says `Connection: close`); an idle keep-alive connection is closed at once, unless
/// its last response went out less than the drain linger ago, when a request its client is
/// already sending is answered instead of being cut off — the race that loses requests when
/// servers reload (`Conn::begin_drain`). Returns when to give up.
fn begin_drain(shared_loop: &Loop, shared: &Shared) -> Instant {
    log::info!("draining: no new connections; finishing in-flight requests");
    // In order: the worker watches the last one to tell the master it stopped accepting.
    for listener in &shared_loop.listeners {
        let listener = lock(listener).take();
        if let Some(listener) = listener {
            if let Err(e) = shared_loop.epoll.delete(listener.as_fd()) {
                log::debug!("deregister listener: {e}");
            }
            // Dropped here: the socket closes.
        }
    }
    shared.draining.store(true, Ordering::SeqCst);
    if let Some(http2) = &shared_loop.http2 {
        http2.begin_drain();
    }
    let now = Instant::now();
    shared_loop.slots.begin_drain(now, &shared.config);
    // Upgraded connections stay until the graceful timeout; their apps hear it now, so they
    // can tell their clients to reconnect (to the new generation, on a swap).
    for upgraded in shared_loop.slots.upgraded() {
        upgraded.going_away();
        shared_loop.slots.queue_upgraded(upgraded);
    }
    now + shared.config.graceful_timeout
}

/// A parked connection outlived its deadline: a partial head gets a 408 (RFC 9110 §15.5.9), an
/// idle keep-alive connection is just closed.
fn time_out(conn: &mut Conn) {
    if conn.sending_file() {
        // Mid-body: an error response cannot follow.
        log::debug!("{}: client read nothing within --io-timeout", conn.peer());
    } else if conn.has_partial_request() {
        crate::logging::refused(conn.peer().host(), 408, &"header timeout");
        crate::stats::rejected(408);
        let mut out = Vec::new();
        encode_error(
            &mut out,
            408,
            httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes(),
        );
        // Best effort: the socket is non-blocking and the client may be gone.
        if let Err(e) = conn.send_now(&out) {
            log::debug!("{}: cannot send the 408: {e}", conn.peer());
        }
    } else {
        log::debug!("{}: keep-alive timeout", conn.peer());
    }
}

/// A request has run past --timeout: the app is stuck, and only replacing the process frees
/// its thread (uWSGI's harakiri, gunicorn's worker timeout). `_exit` skips destructors and
/// atexit handlers, which could block on whatever the stuck app holds.
fn harakiri(running: Duration) -> ! {
    log::error!(
        "a request has been running for {:.1}s, past --timeout; exiting so the master replaces this worker",
        running.as_secs_f64()
    );
    crate::logging::flush_all();
    exit_now(i32::from(crate::exit::HARAKIRI))
}
