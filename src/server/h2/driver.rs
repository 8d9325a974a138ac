//! The HTTP/2 thread: a single-threaded tokio runtime whose tasks are this process's HTTP/2
//! connections. A task owns its socket and its `h2::server::Connection`, which it polls for new
//! streams (polling it is what reads and writes every frame, for every stream); each stream it
//! accepts goes to the serving threads' queue — or, for an app that declared it never waits
//! (`WS_APP_NONBLOCKING`), is run right here: the streams a read brought are gathered while the
//! connection decodes what it holds (their bodies' DATA frames with them), then each runs its
//! app's `call` and `next` until it ends or pends, and the answers go out with the next write. A
//! blocking 1.0 app never runs here.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::Reason;
use tokio::sync::{mpsc, watch};

use super::io::H2Io;
use super::stream::{ConnInfo, StreamJob};
use super::{Job, Limits, Queue};
use crate::server::conn::Conn;
use crate::server::serve::ThreadScratch;
use crate::server::slots::Token;
use crate::server::Shared;
use crate::sys::socket::Stream;
use crate::tls::TlsSession;

/// What a client may send on one stream ahead of the app's reads.
const STREAM_WINDOW: u32 = 128 * 1024;

/// What a client may send on the whole connection ahead of the app's reads: every stream's
/// window at once (`max_streams` x `STREAM_WINDOW`). Streams wait in the queue for a serving
/// thread with their bodies' first window already received; a smaller connection window lets
/// those queued bodies take it all, and the stream being served then starves until its body
/// timeout (twenty uploads from a browser did). Memory a connection can pin stays bounded by it.
fn connection_window(limits: &Limits) -> u32 {
    // A window is at most 2^31 - 1 (RFC 9113 §6.9.1).
    limits
        .max_streams
        .saturating_mul(STREAM_WINDOW)
        .min(LAST_STREAM_ID)
}

/// The last stream id a client may open (RFC 9113 §5.1.1: ids are 31 bits and only grow).
const LAST_STREAM_ID: u32 = (1 << 31) - 1;

/// How often an idle connection is checked against `--keep-alive`.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// After a GOAWAY, how long a connection without streams waits for its client to close.
const GOAWAY_LINGER: Duration = Duration::from_secs(2);

/// New streams gathered before they run on this thread; more than this run before the
/// connection reads on.
const INLINE_BATCH: usize = 32;

thread_local! {
    /// Set on the HTTP/2 thread: a stream's transport there never waits (`transport.rs`).
    static ON_HTTP2_THREAD: Cell<bool> = const { Cell::new(false) };
    /// The HTTP/2 thread's buffers for the streams it runs, as a serving thread has its own.
    static SCRATCH: RefCell<Option<ThreadScratch>> = const { RefCell::new(None) };
}

/// This is the HTTP/2 thread: waiting for a stream's client here would wait for this thread.
pub(super) fn on_http2_thread() -> bool {
    ON_HTTP2_THREAD.get()
}

/// A connection on its way from a serving thread to the HTTP/2 thread.
pub(super) struct Handoff {
    stream: Stream,
    tls: Option<Box<TlsSession>>,
    early: Vec<u8>,
    info: Arc<ConnInfo>,
    /// Its slot, released when the connection ends.
    pub(super) token: Token,
}

impl Handoff {
    /// Takes the socket (a duplicate of its descriptor), the TLS session and the unread input
    /// out of `conn`.
    pub(super) fn take(conn: &mut Conn) -> std::io::Result<Handoff> {
        let info = Arc::new(ConnInfo::of(conn));
        let (stream, tls, early) = conn.hand_over()?;
        Ok(Handoff {
            stream,
            tls,
            early,
            info,
            token: conn.token(),
        })
    }
}

/// What the connections are configured with, from the server's configuration.
#[derive(Clone, Copy)]
pub(super) struct Settings {
    header_timeout: Duration,
    keep_alive: Duration,
    limits: Limits,
}

impl Settings {
    pub(super) fn of(config: &crate::server::Config) -> Settings {
        Settings {
            header_timeout: config.header_timeout,
            keep_alive: config.keep_alive,
            limits: config.http2_limits,
        }
    }
}

/// The HTTP/2 thread's body: serves connections until the channel closes.
pub(super) fn run(
    mut handoffs: mpsc::UnboundedReceiver<Handoff>,
    queue: Arc<Queue>,
    settings: Settings,
    drain: watch::Receiver<bool>,
    inline: Option<Arc<Shared>>,
) {
    ON_HTTP2_THREAD.set(true);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            log::error!("HTTP/2 is off: cannot start its runtime: {e}");
            while let Some(handoff) = handoffs.blocking_recv() {
                queue.slots.release(handoff.token);
            }
            return;
        }
    };
    let _ = queue.runtime.set(runtime.handle().clone());
    // The serving threads' responses wake this thread: each wake-up would otherwise take the
    // CPU from the serving thread at once (on a worker with one CPU) to write one response;
    // batched, it writes all that are ready when the serving thread waits.
    if let Err(e) = crate::sys::process::mark_this_thread_batch() {
        log::debug!("the HTTP/2 thread stays SCHED_OTHER: {e}");
    }
    runtime.block_on(async move {
        while let Some(handoff) = handoffs.recv().await {
            let (queue, drain, inline) = (Arc::clone(&queue), drain.clone(), inline.clone());
            tokio::spawn(async move {
                let token = handoff.token;
                connection(handoff, &queue, settings, drain, inline).await;
                queue.slots.release(token);
            });
        }
    });
    // Dropping the runtime drops the connections still open (the stop's graceful timeout ran out).
    drop(runtime);
    // The app's buffers go before the thread ends (the app itself goes only after it is joined).
    SCRATCH.with(|scratch| scratch.borrow_mut().take());
}

/// Runs `batch`'s streams on this thread, each until it ends or parks.
fn run_here(batch: &mut Vec<Job>, shared: &Shared) {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let scratch =
            scratch.get_or_insert_with(|| ThreadScratch::new(super::thread_index(&shared.config)));
        for job in batch.drain(..) {
            super::serve_stream(job, shared, scratch);
        }
    });
    // Their access-log lines, which a serving thread writes before it waits for events: this
    // thread's would otherwise wait in its buffer until the process exits.
    crate::logging::flush_thread();
}

/// Counts a connection's streams that are queued or running on a serving thread: `h2` stops
/// counting a stream the client reset, the app may still be running it (rapid reset).
pub(super) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// One more stream in `count`, until this is dropped.
    fn counted(count: &Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What woke a connection's task.
enum Event {
    /// A new stream, counted and boxed as the job it becomes (one allocation; the other events
    /// are a word).
    Stream(Option<Result<Box<StreamJob>, h2::Error>>),
    Drain,
    Tick,
    /// The client sent too many control frames (`calm.rs`).
    Flood,
    /// Streams to run on this thread: the connection has decoded what it read.
    Batch,
}

/// Serves one connection until it ends.
async fn connection(
    handoff: Handoff,
    queue: &Arc<Queue>,
    settings: Settings,
    mut drain: watch::Receiver<bool>,
    inline: Option<Arc<Shared>>,
) {
    let Handoff {
        stream,
        tls,
        early,
        info,
        ..
    } = handoff;
    let peer = info.peer;
    let flooded = Arc::new(AtomicBool::new(false));
    let limits = settings.limits;
    let io = match H2Io::new(stream, tls, early, Arc::clone(&flooded), &limits) {
        Ok(io) => io,
        Err(e) => {
            log::warn!("{peer}: cannot watch the HTTP/2 connection: {e}");
            return;
        }
    };
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(limits.max_streams)
        .max_header_list_size(limits.max_header_list)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(connection_window(&limits))
        .handshake::<_, Bytes>(io);
    let mut conn = match tokio::time::timeout(settings.header_timeout, handshake).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            log::debug!("{peer}: HTTP/2 handshake failed: {e}");
            return;
        }
        Err(_) => {
            log::debug!("{peer}: no HTTP/2 preface within --header-timeout");
            return;
        }
    };
    let in_flight = Arc::new(AtomicUsize::new(0));
    // The drain future and the idle tick stay registered for their wakes between the task's
    // turns: each is polled again only once its signal came (a cheap check: the watch's
    // version, the timer's state), not on every turn — a turn per stream or two under load.
    let drain_signal = drain.clone();
    let mut drain_registered = false;
    let mut drained: Option<Pin<Box<dyn Future<Output = ()> + Send>>> =
        Some(Box::pin(async move {
            while !*drain.borrow_and_update() {
                if drain.changed().await.is_err() {
                    // The server is stopping without a drain: the runtime ends soon.
                    std::future::pending::<()>().await;
                }
            }
        }));
    let mut tick = Box::pin(tokio::time::sleep(IDLE_CHECK));
    let mut tick_registered = false;
    // Streams accepted since the last tick: the connection was active (checked once a tick,
    // not a clock read per stream).
    let mut accepted_since_tick = false;
    let mut active_at = Instant::now();
    // When the GOAWAY was sent (a drain, or --keep-alive).
    let mut going_away: Option<Instant> = None;
    let mut calmed = false;
    // Streams accepted in this turn of the task, not yet queued (or run here).
    let mut batch = Vec::new();
    loop {
        let event = poll_fn(|cx| {
            if let Some(drain) = &mut drained {
                if !drain_registered || drain_signal.has_changed().unwrap_or(true) {
                    drain_registered = true;
                    if drain.as_mut().poll(cx).is_ready() {
                        drained = None;
                        return Poll::Ready(Event::Drain);
                    }
                }
            }
            if flooded.load(Ordering::Relaxed) && !calmed {
                return Poll::Ready(Event::Flood);
            }
            if !tick_registered || tick.is_elapsed() {
                tick_registered = true;
                if tick.as_mut().poll(cx).is_ready() {
                    // The next turn polls the new deadline, which registers it.
                    tick.as_mut()
                        .reset(tokio::time::Instant::now() + IDLE_CHECK);
                    tick_registered = false;
                    return Poll::Ready(Event::Tick);
                }
            }
            if inline.is_some() && batch.len() >= INLINE_BATCH {
                return Poll::Ready(Event::Batch);
            }
            let accepted = conn.poll_accept(cx);
            if accepted.is_pending() && !batch.is_empty() {
                if inline.is_some() {
                    return Poll::Ready(Event::Batch);
                }
                // This turn's streams, queued at once: one lock, one wake-up at most.
                queue.push_all(batch.drain(..));
            }
            let job = |(request, respond)| {
                Box::new(StreamJob {
                    request,
                    respond,
                    info: Arc::clone(&info),
                    queue: Arc::clone(queue),
                    _in_flight: InFlight::counted(&in_flight),
                })
            };
            accepted.map(|accepted| Event::Stream(accepted.map(|r| r.map(job))))
        })
        .await;
        match event {
            Event::Stream(Some(Ok(job))) => {
                accepted_since_tick = true;
                let last_id = u32::from(job.respond.stream_id()) == LAST_STREAM_ID;
                batch.extend(accept(job, (&in_flight, limits), queue));
                if last_id && going_away.is_none() {
                    // No stream can follow it: say so, and close once it is answered (the
                    // client opens a new connection), instead of idling until --keep-alive.
                    going_away = Some(Instant::now());
                    conn.graceful_shutdown();
                }
            }
            Event::Stream(Some(Err(e))) => {
                log::debug!("{peer}: HTTP/2 connection failed: {e}");
                break;
            }
            Event::Stream(None) => break,
            Event::Batch => {
                if let Some(shared) = &inline {
                    run_here(&mut batch, shared);
                }
            }
            Event::Drain if going_away.is_none() => {
                going_away = Some(Instant::now());
                conn.graceful_shutdown();
            }
            Event::Drain => {}
            Event::Flood => {
                log::warn!("{peer}: HTTP/2 control-frame flood (SETTINGS or PING): GOAWAY ENHANCE_YOUR_CALM");
                calmed = true;
                going_away.get_or_insert_with(Instant::now);
                conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
            }
            Event::Tick => {
                let busy = conn.has_streams()
                    || in_flight.load(Ordering::SeqCst) > 0
                    || std::mem::take(&mut accepted_since_tick);
                match going_away {
                    _ if busy => active_at = Instant::now(),
                    None if active_at.elapsed() >= settings.keep_alive => {
                        log::debug!("{peer}: HTTP/2 keep-alive timeout");
                        going_away = Some(Instant::now());
                        conn.graceful_shutdown();
                    }
                    // The GOAWAY's closing handshake waits for the client's PING answer: one
                    // that never answers must not hold a drain until --graceful-timeout.
                    Some(since) if since.elapsed() >= GOAWAY_LINGER => break,
                    _ => {}
                }
            }
        }
    }
    // Streams accepted before the connection failed still run (their responses go nowhere,
    // as when the connection fails while they run).
    queue.push_all(batch);
}

/// A stream the client opened: a job for a serving thread (or this one), or refused (`None`)
/// when the connection already has its share of streams queued or running, or a drain began.
fn accept(
    mut job: Box<StreamJob>,
    (in_flight, limits): (&Arc<AtomicUsize>, Limits),
    queue: &Queue,
) -> Option<Job> {
    if queue.draining.load(Ordering::SeqCst) {
        job.respond.send_reset(Reason::REFUSED_STREAM);
        return None;
    }
    let max_streams = limits.max_streams;
    // The job counts itself: more than the limit with it is one too many.
    if in_flight.load(Ordering::SeqCst) > max_streams as usize {
        log::debug!(
            "{}: refused an HTTP/2 stream: {max_streams} (--http2-max-streams) still queued or running (reset streams count until the app is done with them)",
            job.info.peer
        );
        job.respond.send_reset(Reason::REFUSED_STREAM);
        return None;
    }
    Some(Job::New(job))
}
