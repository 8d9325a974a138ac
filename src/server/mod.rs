//! Sockets and threads: one event loop parks idle connections, a pool of app threads serves them.
//!
//! ```text
//!   accept ─▶ event loop (mio/epoll) ── whole head buffered ──▶ app thread: parse, call app,
//!               ▲  reads heads, sweeps timeouts                 write, serve pipelined requests
//!               └──────────── park: socket empty ◀──────────────┘
//! ```
//! Idle keep-alive connections cost a slot and a buffer, not a thread; a slow client cannot
//! hold an app thread while it sends its head; a blocking app call holds only its own thread.
//! `serve` is the whole serving life of one process, so a worker process can call it as is.

mod conn;
mod event_loop;
mod listener;
mod pool;
mod socket_io;

use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::app::loader::LoadedApp;
use crate::http::request::Limits;

pub(crate) use listener::bind;

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
    /// How long in-flight requests may take to finish after a stop was asked.
    pub(crate) graceful_timeout: Duration,
    pub(crate) max_body: u64,
    pub(crate) limits: Limits,
    /// Other processes serve the same app (`webserver.multiprocess`).
    pub(crate) multiprocess: bool,
}

/// A stop request that any thread (a signal handler thread, a supervisor) can raise.
#[derive(Default)]
pub(crate) struct Shutdown {
    requested: AtomicBool,
    waker: OnceLock<mio::Waker>,
}

impl Shutdown {
    /// Ask the server to stop accepting, finish in-flight requests and return.
    pub(crate) fn trigger(&self) {
        self.requested.store(true, Ordering::SeqCst);
        if let Some(waker) = self.waker.get() {
            if let Err(e) = waker.wake() {
                log::warn!("could not wake the event loop for shutdown: {e}");
            }
        }
    }

    pub(crate) fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
}

/// State shared by the event loop and the app threads.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) app: Arc<LoadedApp>,
    /// Serialises calls into an app that declared itself single-threaded.
    pub(crate) app_lock: Option<Mutex<()>>,
    draining: AtomicBool,
}

impl Shared {
    /// True once a stop was asked: responses say `Connection: close` and nothing is parked.
    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Serve `app` on `listener` until `shutdown` is triggered; then finish in-flight requests (up
/// to the graceful timeout) and return. The app's `shutdown` is the caller's to run.
pub(crate) fn serve(
    listener: TcpListener,
    app: Arc<LoadedApp>,
    config: Config,
    shutdown: Arc<Shutdown>,
) -> io::Result<()> {
    let shared = Arc::new(Shared {
        app_lock: app.single_threaded.then(|| Mutex::new(())),
        app,
        config,
        draining: AtomicBool::new(false),
    });
    event_loop::run(listener, shared, shutdown)
}
