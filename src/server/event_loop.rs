//! The serving threads and their coordinator.
//!
//! Every thread waits in `epoll_wait` on one shared, edge-triggered epoll instance; the kernel
//! wakes one waiter per event (exclusive wake-ups), and that thread serves the connection itself:
//! reads the head, calls the app, writes, serves what is pipelined, and parks the connection when
//! the socket is empty. There is no hand-off between threads per request (no futex, no context
//! switch), idle connections hold no thread, a slow client never holds one while it dribbles its
//! head (reads never wait), and a blocking app call holds only its own thread while the others
//! keep answering events. The calling thread coordinates: it sweeps deadlines, watches
//! `--timeout`, and drains on shutdown; it never runs app code, so it reacts at once.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Interest, Poll, Registry, Token, Waker};

use super::conn::{self, After, Conn, ThreadScratch};
use super::slots::Slots;
use super::{Shared, Shutdown};
use crate::http::response::encode_error;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

/// How often parked connections are checked against their deadlines.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// A keep-alive connection idle this long gives its read buffer back.
const IDLE_BUFFER_AFTER: Duration = Duration::from_secs(1);

/// Serving the events of one batch took longer than this: pass the rest on.
const SLOW_BATCH: Duration = Duration::from_millis(1);

/// Events taken per `epoll_wait`.
const EVENT_BATCH: usize = 64;

/// What the serving threads share besides `Shared`.
struct Loop {
    epoll_fd: i32,
    /// `None` once draining: the socket is closed so no new connection can reach this process.
    listener: Mutex<Option<TcpListener>>,
    /// The listener's address if bound to one address (then no getsockname per connection).
    bound: Option<SocketAddr>,
    slots: Slots,
    stop: AtomicBool,
    /// Threads blocked in `epoll_wait`: free to take events this thread passes on.
    waiting: AtomicUsize,
}

pub(crate) fn run(
    listener: StdListener,
    shared: Arc<Shared>,
    shutdown: Arc<Shutdown>,
) -> io::Result<()> {
    let poll = Poll::new()?;
    let bound = listener
        .local_addr()
        .ok()
        .filter(|addr| !addr.ip().is_unspecified());
    let listener = TcpListener::from_std(listener);
    let waker = Waker::new(poll.registry(), WAKER)?;
    let shared_loop = Arc::new(Loop {
        epoll_fd: poll.as_raw_fd(),
        listener: Mutex::new(Some(listener)),
        bound,
        slots: Slots::new(poll.registry().try_clone()?),
        stop: AtomicBool::new(false),
        waiting: AtomicUsize::new(0),
    });
    let registry = poll.registry().try_clone()?;
    let mut threads = Vec::with_capacity(shared.config.threads);
    for index in 0..shared.config.threads.max(1) {
        let (shared, shared_loop) = (Arc::clone(&shared), Arc::clone(&shared_loop));
        let registry = registry.try_clone()?;
        threads.push(
            std::thread::Builder::new()
                .name(format!("serve-{index}"))
                .spawn(move || serve_events(index, &shared_loop, &shared, &registry))?,
        );
    }

    // Accept only once every thread waits for events: a burst of first connections then
    // spreads over all of them instead of queueing behind the first thread's app calls.
    let started = Instant::now();
    while shared_loop.waiting.load(Ordering::Relaxed) < threads.len()
        && started.elapsed() < Duration::from_secs(1)
    {
        std::thread::sleep(Duration::from_micros(200));
    }
    if let Some(listener) = shared_loop
        .listener
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
    {
        poll.registry()
            .register(listener, LISTENER, Interest::READABLE)?;
    }

    let mut stop_by = None;
    loop {
        shutdown.wait(SWEEP_EVERY);
        let now = shared.tick();
        if let Some(running) = shared.overdue() {
            harakiri(running);
        }
        for mut conn in shared_loop.slots.expired(now) {
            time_out(&mut conn);
        }
        if let Some(idle_since) = now.checked_sub(IDLE_BUFFER_AFTER) {
            let keep_alive = shared.config.keep_alive;
            shared_loop
                .slots
                .release_idle_buffers(idle_since, keep_alive);
        }
        if stop_by.is_none() && shutdown.is_requested() {
            stop_by = Some(begin_drain(&shared_loop, &poll, &shared));
        }
        if let Some(deadline) = stop_by {
            if shared_loop.slots.open() == 0 {
                break;
            }
            if now >= deadline {
                // Threads stuck in the app cannot be joined; the process exit ends them.
                log::warn!(
                    "graceful timeout: {} connection(s) still open; stopping anyway",
                    shared_loop.slots.open()
                );
                return Ok(());
            }
        }
    }
    shared_loop.stop.store(true, Ordering::SeqCst);
    for _ in &threads {
        // Each wake-up of the edge-triggered eventfd wakes one waiting thread.
        let _ = waker.wake();
    }
    for thread in threads {
        if thread.join().is_err() {
            log::error!("a serving thread panicked");
        }
    }
    Ok(())
}

/// One serving thread: wait for events, serve what they announce.
fn serve_events(index: usize, shared_loop: &Loop, shared: &Shared, registry: &Registry) {
    let mut scratch = ThreadScratch::new(index);
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENT_BATCH];
    let timeout_ms = SWEEP_EVERY.as_millis() as i32;
    while !shared_loop.stop.load(Ordering::Relaxed) {
        shared_loop.waiting.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `events` has room for EVENT_BATCH entries and outlives the call; epoll_fd is
        // the poller's descriptor, open until every thread has been joined.
        let n = unsafe {
            libc::epoll_wait(
                shared_loop.epoll_fd,
                events.as_mut_ptr(),
                EVENT_BATCH as i32,
                timeout_ms,
            )
        };
        let idle_threads = shared_loop.waiting.fetch_sub(1, Ordering::Relaxed) - 1;
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                log::error!("epoll_wait: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        }
        shared.tick();
        // This thread may block in the app on its first event; events it took beyond that would
        // wait for it, so hand as many as there are idle threads on to them. With every thread
        // busy (the loaded case) nothing is passed on and no syscall is added.
        let events = &events[..n as usize];
        let kept = events.len() - idle_threads.min(events.len().saturating_sub(1));
        for event in &events[kept..] {
            pass_on(Token(event.u64 as usize), shared_loop, registry);
        }
        let taken = Instant::now();
        let mut next = 0;
        while next < kept {
            if next > 0 && taken.elapsed() > SLOW_BATCH {
                // An app call here was slow (it may block again): hand events still waiting in
                // this batch to threads that are idle now. Only to idle threads: re-queueing
                // them for this same thread would put them behind newer events, which starves
                // connections under steady load.
                let idle = shared_loop.waiting.load(Ordering::Relaxed);
                let handed = idle.min(kept - next);
                for event in &events[next..next + handed] {
                    pass_on(Token(event.u64 as usize), shared_loop, registry);
                }
                next += handed;
                if next == kept {
                    break;
                }
            }
            handle(
                Token(events[next].u64 as usize),
                shared_loop,
                shared,
                &mut scratch,
            );
            next += 1;
        }
    }
}

/// Serve what one event announces.
fn handle(token: Token, shared_loop: &Loop, shared: &Shared, scratch: &mut ThreadScratch) {
    // mio registers every source with its token as the event's data.
    match token {
        LISTENER => accept_all(shared_loop, shared, scratch),
        WAKER => {}
        token => {
            if let Some(mut conn) = shared_loop.slots.take(token) {
                // The event means input: read before concluding there is none.
                conn.drained = false;
                serve(conn, &shared_loop.slots, shared, scratch);
            }
        }
    }
}

/// Re-arm a source so the poller reports it again, to another thread.
fn pass_on(token: Token, shared_loop: &Loop, registry: &Registry) {
    match token {
        LISTENER => {
            let mut listener = shared_loop
                .listener
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(listener) = listener.as_mut() {
                if let Err(e) = registry.reregister(listener, LISTENER, Interest::READABLE) {
                    log::debug!("listener: cannot pass the event on: {e}");
                }
            }
        }
        WAKER => {}
        token => shared_loop.slots.pass_on(token),
    }
}

/// Serve a connection until it must wait for its client (park) or is done (close).
fn serve(mut conn: Box<Conn>, slots: &Slots, shared: &Shared, scratch: &mut ThreadScratch) {
    loop {
        match conn::serve(&mut conn, shared, scratch) {
            After::Close => return slots.close(conn),
            After::Park => match slots.park(conn, shared) {
                // Input arrived while we were busy with it: keep going.
                Some(again) => conn = again,
                None => return,
            },
        }
    }
}

/// Stop accepting and let every open connection end on its own: a request in flight finishes
/// (its response says `Connection: close`), and a parked keep-alive connection gets one more
/// keep-alive period, so a request the client already sent on it is answered instead of being
/// cut off — the race that loses requests when servers reload. Returns when to give up.
fn begin_drain(shared_loop: &Loop, poll: &Poll, shared: &Shared) -> Instant {
    log::info!("draining: no new connections; finishing in-flight requests");
    let listener = shared_loop
        .listener
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(mut listener) = listener {
        if let Err(e) = poll.registry().deregister(&mut listener) {
            log::debug!("deregister listener: {e}");
        }
        // Dropped here: the socket closes, which the worker reports to the master.
    }
    shared.draining.store(true, Ordering::SeqCst);
    let now = Instant::now();
    shared_loop
        .slots
        .shorten_deadlines(now + shared.config.keep_alive.min(shared.config.graceful_timeout));
    now + shared.config.graceful_timeout
}

/// Accept every pending connection. All but the last are parked (registering them reports their
/// input to the other threads at once); this thread serves the last one itself, reading the
/// request that usually arrives right behind the handshake without waiting for an event.
fn accept_all(shared_loop: &Loop, shared: &Shared, scratch: &mut ThreadScratch) {
    let mut accepted: Option<Box<Conn>> = None;
    {
        let guard = shared_loop
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Once a stop is asked, new connections stay in the shared backlog for the workers that
        // keep serving, even before the coordinator has closed this process's listener.
        let Some(listener) = guard.as_ref().filter(|_| !shared.draining()) else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((stream, peer)) => {
                    // Responses leave in as few writes as we can make them; Nagle would only
                    // delay the last segment of each (and every chunk of a stream).
                    if let Err(e) = stream.set_nodelay(true) {
                        log::debug!("{peer}: TCP_NODELAY: {e}");
                    }
                    let local = match shared_loop.bound.map_or_else(|| stream.local_addr(), Ok) {
                        Ok(local) => local,
                        Err(e) => {
                            log::debug!("{peer}: local_addr: {e}");
                            continue;
                        }
                    };
                    let token = shared_loop.slots.reserve();
                    let conn = Box::new(Conn::new(
                        stream,
                        token,
                        peer,
                        local,
                        shared.coarse_now(),
                        shared.config.header_timeout,
                    ));
                    if let Some(previous) = accepted.replace(conn) {
                        if let Some(ready) = shared_loop.slots.park(previous, shared) {
                            serve(ready, &shared_loop.slots, shared, scratch);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE/ENFILE: leave the connection in the backlog; it is retried on the
                    // next wake-up rather than spinning here.
                    log::warn!(
                        "accept failed: {e}; raise the open-files limit (ulimit -n) if this repeats"
                    );
                    break;
                }
            }
        }
    }
    if let Some(conn) = accepted {
        serve(conn, &shared_loop.slots, shared, scratch);
    }
}

/// A parked connection outlived its deadline: a partial head gets a 408 (RFC 9110 §15.5.9), an
/// idle keep-alive connection is just closed.
fn time_out(conn: &mut Conn) {
    if conn.has_partial_request() {
        log::info!(target: "access", "{} \"-\" 408 0 header timeout", conn.peer.ip());
        let mut out = Vec::new();
        encode_error(
            &mut out,
            408,
            httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes(),
        );
        let _ = io::Write::write(&mut conn.stream, &out);
    } else {
        log::debug!("{}: keep-alive timeout", conn.peer);
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
    // SAFETY: _exit ends the process at once; nothing of ours runs afterwards.
    unsafe { libc::_exit(i32::from(crate::exit::HARAKIRI)) }
}
