//! Sockets and threads: N serving threads share one edge-triggered epoll instance; whichever
//! thread an event wakes serves that connection itself, then parks it back on epoll.
//!
//! ```text
//!   epoll (shared) ──event──▶ any idle serving thread: read head, call app, write,
//!        ▲                    serve what is pipelined, one write per batch
//!        └──── park: socket empty (registered on first park) ◀──┘
//!   coordinator (the calling thread): deadlines, --timeout watch, accept retry, drain, join
//! ```
//! Idle keep-alive connections cost a slot and their state, not a thread and not a read buffer
//! (a serving thread lends its own to the connection it serves); a slow client cannot
//! hold a thread while it sends its head (reads never wait); a blocking app call holds only its
//! own thread while the others keep taking events. `serve` is the whole serving life of one
//! process, so a worker process calls it as is.
//!
//! `serve` takes the loaded app and gives it back (`Served::Finished`) only after joining every
//! thread that could call into it, so the app's `shutdown`, which consumes it, cannot race a
//! `call`. When `--graceful-timeout` runs out with requests still inside the app, the app is
//! not given back (`Served::Abandoned`): the caller ends the process without shutting it down.
//! The operating system is reached through `crate::sys` only; this module has no `unsafe`.

#![deny(unsafe_code)]

mod accept_pause;
mod backlog;
mod conn;
mod deferred;
mod event_loop;
mod h2;
pub(crate) use h2::Limits as Http2Limits;
mod heap_trim;
mod listener;
pub(crate) mod proxied;
mod serve;
mod slots;
mod socket_io;
mod static_route;
pub(crate) mod upgraded;
pub(crate) mod ws;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::app::loader::LoadedApp;
use crate::http::scan::Limits;

pub(crate) use h2::offer_h2;
pub(crate) use listener::Listener;
pub(crate) use proxied::Proxies;

/// Everything the serving loop needs to know.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// App threads.
    pub(crate) threads: usize,
    /// How long an idle keep-alive connection is kept.
    pub(crate) keep_alive: Duration,
    /// How long a client may take to send a request head.
    pub(crate) header_timeout: Duration,
    /// How long one read of the body or one write of the response may wait for the client.
    pub(crate) io_timeout: Duration,
    /// How long one request may wait for its body in total, however slowly it trickles in.
    pub(crate) body_timeout: Duration,
    /// How long one request may run in the app before the process gives up on itself
    /// (harakiri). Time spent waiting for the client does not count.
    pub(crate) request_timeout: Option<Duration>,
    /// Stop (gracefully) after this many requests, so the master starts a fresh worker.
    pub(crate) max_requests: Option<u64>,
    /// How long in-flight requests may take to finish after a stop was asked.
    pub(crate) graceful_timeout: Duration,
    pub(crate) max_body: u64,
    pub(crate) limits: Limits,
    /// Other processes serve the same app (`webserver.multiprocess`).
    pub(crate) multiprocess: bool,
    /// Whom to believe about the client (`--forwarded-allow-ips`, `--proxy-protocol`).
    pub(crate) proxies: Proxies,
    /// Serve TLS with this configuration on the listener (`--certfile`/`--keyfile`).
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Files answered without the app (`--static`).
    pub(crate) statics: Option<Arc<crate::static_files::StaticFiles>>,
    /// WebSocket limits (`--ws-max-message`, `--ws-ping-interval`).
    pub(crate) websocket: ws::WsConfig,
    /// Serve HTTP/2 (`--http2`) on every listener: h2c with prior knowledge, `h2` by ALPN on
    /// TLS (a listener's `h2` option does on that listener).
    pub(crate) http2: bool,
    /// `tls` offering `h2` by ALPN, for the TLS listeners that serve HTTP/2.
    pub(crate) tls_h2: Option<Arc<rustls::ServerConfig>>,
    /// What one HTTP/2 client may ask (`--http2-max-streams`, ...).
    pub(crate) http2_limits: Http2Limits,
}

/// A stop request that any thread (a signal handler thread, a supervisor) can raise.
#[derive(Default)]
pub(crate) struct Shutdown {
    requested: AtomicBool,
    /// When the stop was asked: the graceful timeout counts from here, the app's `shutdown`
    /// included.
    requested_at: OnceLock<Instant>,
    /// Wakes the coordinator (`wait`) as soon as a stop is asked.
    asked: (Mutex<()>, Condvar),
    on_retire: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Shutdown {
    /// Ask the server to stop accepting, finish in-flight requests and return.
    pub(crate) fn trigger(&self) {
        if !self.requested.swap(true, Ordering::SeqCst) {
            let _ = self.requested_at.set(Instant::now());
            self.wake_coordinator();
        }
    }

    fn wake_coordinator(&self) {
        let (lock, asked) = &self.asked;
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        asked.notify_all();
    }

    /// Sleep up to `timeout`, or less if a stop is asked meanwhile.
    pub(crate) fn wait(&self, timeout: Duration) {
        let (lock, asked) = &self.asked;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        if !self.is_requested() {
            // Woken or timed out, the caller looks at the flag again: neither result matters.
            let (_guard, _timed_out) = asked
                .wait_timeout(guard, timeout)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Stop because this process has done its share (--max-requests): run the `on_retire` hook
    /// (which tells the master to start a replacement), then stop as `trigger` does.
    pub(crate) fn retire(&self) {
        // The flag first: serving threads stop promising keep-alive at once, while this thread
        // may still be descheduled in the hook or a log write.
        if self.requested.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self.requested_at.set(Instant::now());
        if let Some(hook) = self.on_retire.get() {
            hook();
        }
        self.wake_coordinator();
    }

    /// What `retire` runs first.
    pub(crate) fn on_retire(&self, hook: Box<dyn Fn() + Send + Sync>) {
        if self.on_retire.set(hook).is_err() {
            log::warn!("a retire hook was already set");
        }
    }

    pub(crate) fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// When the stop was asked (`None`: not asked).
    pub(crate) fn requested_at(&self) -> Option<Instant> {
        self.requested_at.get().copied()
    }
}

/// State shared by the coordinator and the serving threads.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) app: LoadedApp,
    /// Serialises calls into an app that declared itself single-threaded.
    pub(crate) app_lock: Option<Mutex<()>>,
    draining: AtomicBool,
    shutdown: Arc<Shutdown>,
    served: AtomicU64,
    /// Per serving thread, and last the HTTP/2 thread: when its current request started (ms after
    /// `clock`, plus one), moved later by the time it spent waiting for its client; 0 while idle
    /// or waiting.
    busy_since: Box<[AtomicU64]>,
    clock: Instant,
    /// Milliseconds after `clock`, refreshed by the event loop each time it wakes: request
    /// bookkeeping reads this instead of the system clock (several reads per request otherwise).
    coarse_ms: AtomicU64,
    /// The wall-clock time at `clock`, for the Date header.
    wall_at_clock: SystemTime,
}

impl Shared {
    /// True once a stop was asked: responses say `Connection: close` and nothing is parked.
    pub(crate) fn draining(&self) -> bool {
        // A stop asked but not yet acted on by the coordinator counts: serving threads must not
        // promise keep-alive meanwhile.
        self.draining.load(Ordering::Relaxed) || self.shutdown.is_requested()
    }

    /// App thread `thread` starts (`true`) or ends a request; counts requests for --max-requests.
    pub(crate) fn mark_busy(&self, thread: usize, busy: bool) {
        let Some(slot) = self.busy_since.get(thread) else {
            return;
        };
        if busy {
            slot.store(
                self.coarse_ms.load(Ordering::Relaxed) + 1,
                Ordering::Relaxed,
            );
            return;
        }
        slot.store(0, Ordering::Relaxed);
        let served = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        if self.config.max_requests == Some(served) {
            self.shutdown.retire();
            log::info!("served {served} requests (--max-requests): recycling this worker");
        }
    }

    /// Requests served so far (counted when each ends).
    pub(crate) fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// App thread `thread`'s request parked (ABI 1.1): the thread is free, and the request is
    /// not counted yet (it is when it ends, on whichever thread).
    pub(crate) fn mark_idle(&self, thread: usize) {
        if let Some(slot) = self.busy_since.get(thread) {
            slot.store(0, Ordering::Relaxed);
        }
    }

    /// When the request running on app thread `thread` must end (`--timeout`, counted from its
    /// start), or a year from now without one.
    pub(crate) fn request_deadline(&self, thread: usize) -> Instant {
        const NO_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);
        let started = self
            .busy_since
            .get(thread)
            .map(|t| t.load(Ordering::Relaxed))
            .filter(|&t| t != 0)
            .map_or_else(
                || self.coarse_now(),
                |t| self.clock + Duration::from_millis(t - 1),
            );
        started + self.config.request_timeout.unwrap_or(NO_TIMEOUT)
    }

    /// Refresh the coarse clock (the event loop calls this whenever it wakes, at least every
    /// sweep period).
    pub(crate) fn tick(&self) -> Instant {
        let now = Instant::now();
        let ms = now.duration_since(self.clock).as_millis() as u64;
        self.coarse_ms.store(ms, Ordering::Relaxed);
        now
    }

    /// The time as of the loop's last wake-up: good for deadlines measured in seconds.
    pub(crate) fn coarse_now(&self) -> Instant {
        self.clock + Duration::from_millis(self.coarse_ms.load(Ordering::Relaxed))
    }

    /// The wall-clock time as of the loop's last wake-up (the Date header has 1 s resolution).
    pub(crate) fn coarse_wall(&self) -> SystemTime {
        self.wall_at_clock + Duration::from_millis(self.coarse_ms.load(Ordering::Relaxed))
    }

    /// Serving thread `thread` is about to wait for its client (body bytes, room to send): its
    /// request's --timeout clock stands still until `end_client_wait`, because a slow client is
    /// not a stuck app. Reads the clock (a vDSO call, no syscall); only paths that are about to
    /// touch the socket call this.
    pub(crate) fn begin_client_wait(&self, thread: usize) -> ClientWait {
        let now = self.now_ms();
        let busy_since = self.busy_since.get(thread).map_or(0, |slot| {
            // Only this thread writes its slot: a load and a store suffice.
            let since = slot.load(Ordering::Relaxed);
            slot.store(0, Ordering::Relaxed);
            since
        });
        ClientWait {
            thread,
            busy_since,
            began: now,
        }
    }

    /// The wait is over: the request's --timeout clock runs again from where it stood. Returns
    /// how long the wait took.
    pub(crate) fn end_client_wait(&self, wait: ClientWait) -> Duration {
        let waited = self.now_ms().saturating_sub(wait.began);
        if wait.busy_since != 0 {
            if let Some(slot) = self.busy_since.get(wait.thread) {
                slot.store(wait.busy_since + waited, Ordering::Relaxed);
            }
        }
        Duration::from_millis(waited)
    }

    /// Milliseconds after `clock`, read now (and refreshing the coarse clock for everyone).
    fn now_ms(&self) -> u64 {
        self.tick().duration_since(self.clock).as_millis() as u64
    }

    /// The longest-running request, if one exceeds --timeout.
    pub(crate) fn overdue(&self) -> Option<Duration> {
        let limit = self.config.request_timeout?;
        let now = self.clock.elapsed().as_millis() as u64 + 1;
        let oldest = self
            .busy_since
            .iter()
            .map(|t| t.load(Ordering::Relaxed))
            .filter(|&t| t != 0)
            .min()?;
        let running = Duration::from_millis(now.saturating_sub(oldest));
        (running > limit).then_some(running)
    }
}

/// A serving thread's wait for its client, taken out of its request's --timeout clock
/// (`Shared::begin_client_wait`).
#[must_use = "the request's --timeout clock stands still until end_client_wait"]
pub(crate) struct ClientWait {
    thread: usize,
    /// The thread's `busy_since` when the wait began (0: not inside a request).
    busy_since: u64,
    /// Milliseconds after `Shared::clock`.
    began: u64,
}

/// How serving ended, and whether the app may be shut down.
#[must_use = "the app's shutdown is the caller's to run (or to skip, when abandoned)"]
pub(crate) enum Served {
    /// Stopped as asked, every serving thread joined: the app is the caller's again, and no
    /// thread can call into it, so its `shutdown` may run.
    Finished(LoadedApp),
    /// Serving could not start (no epoll instance, no thread); every thread already started was
    /// joined, so the app may be shut down.
    Failed(io::Error, LoadedApp),
    /// `--graceful-timeout` ran out while `open` connections were still being served: their
    /// threads may be inside the app and still hold it, so the app must not be shut down. The
    /// caller ends the process.
    Abandoned { open: usize },
}

/// Serve `app` on `listeners` until `shutdown` is triggered; then finish in-flight requests (up
/// to the graceful timeout) and return. The app comes back only when no thread can call it.
pub(crate) fn serve(
    listeners: Vec<Listener>,
    app: LoadedApp,
    config: Config,
    shutdown: Arc<Shutdown>,
) -> Served {
    // Before the first connection: what the burst of them frees must be able to go back
    // (`event_loop`'s heap trim).
    crate::sys::heap::fix_trim_threshold();
    let shared = Arc::new(Shared {
        app_lock: app.single_threaded().then(|| Mutex::new(())),
        app,
        // The serving threads', and the HTTP/2 thread's, which may run streams (`h2::thread_index`).
        busy_since: (0..=h2::thread_index(&config))
            .map(|_| AtomicU64::new(0))
            .collect(),
        config,
        draining: AtomicBool::new(false),
        shutdown: Arc::clone(&shutdown),
        served: AtomicU64::new(0),
        clock: Instant::now(),
        coarse_ms: AtomicU64::new(0),
        wall_at_clock: SystemTime::now(),
    });
    let ended = event_loop::run(listeners, &shared, &shutdown);
    if let Ok(event_loop::Ended::Abandoned { open }) = ended {
        return Served::Abandoned { open };
    }
    // Every serving thread was joined, and with it every clone of `shared`.
    let app = match Arc::try_unwrap(shared) {
        Ok(shared) => shared.app,
        Err(_) => {
            log::error!("the app is still shared after every serving thread was joined");
            return Served::Abandoned { open: 0 };
        }
    };
    match ended {
        Ok(_) => Served::Finished(app),
        Err(e) => Served::Failed(e, app),
    }
}
