//! Serve any [`tower_service::Service`] — an axum `Router` with its state, extractors and layers —
//! from `webserver`, unchanged, with one macro call:
//!
//! ```ignore
//! fn router() -> axum::Router {
//!     axum::Router::new().route("/", axum::routing::get(|| async { "Hello, world!\n" }))
//! }
//!
//! webserver_tower::export_service!(app, router);
//! ```
//!
//! Build the crate as a `cdylib` and run `webserver target/release/libNAME.so:app`.
//!
//! How it runs (ABI 1.1 deferred responses; see `app-abi/include/webserver_app.h`):
//! - `init` checks that the server speaks ABI 1.1, builds one multi-threaded tokio runtime for the
//!   worker process (`--worker-threads N` among the app arguments, else one thread per CPU) and
//!   calls the factory inside it (so it may spawn tasks or open pools).
//! - `call` builds the `http::Request` (`request.rs`) from the head the server parsed (ABI 1.3
//!   `request_parts`: the target as sent, the fields one by one as received), or on an older
//!   server from the environ, and polls the service's future inline on the serving thread,
//!   inside the runtime's context (`exchange.rs`). A response that is ready at once is answered
//!   in `call` itself, as an app that does not defer answers (`answer.rs`), with no task spawned,
//!   no thread woken and no deferred body; a future that is really pending makes `call` return
//!   a deferred body, the request parks (no serving thread waits), and the future's waker makes
//!   the server call `next` — and so poll it — again. The response body's frames are polled the
//!   same way, one chunk per `next` (a first chunk made in `call` is given with the frame after
//!   it, if that is ready: trailers that end the body go out from `call`), so a slow client holds
//!   the producer back. The runtime's own threads drive timers and I/O and run what handlers
//!   spawn. The request body streams the other way with bounded buffering (`body.rs`).
//! - The app is exported as `WS_APP_NONBLOCKING`: nothing in `call` or `next` waits, so the server
//!   may run them on its HTTP/2 thread, with no hop to a serving thread and back. A handler that
//!   blocks (a synchronous call inside an `async fn`, which tokio forbids too) stalls that thread.
//! - A panic in the service becomes a 500 (or a cut connection once bytes were sent) and a log
//!   line; `close` (client gone, `--timeout`, drain) drops the future; `shutdown` stops the
//!   runtime (its tasks are dropped) and waits for its threads. A thread that does not end (a
//!   `spawn_blocking` task that never returns) is named in a log line; the server stops waiting
//!   for `shutdown` at its `--graceful-timeout` and ends the worker process without it.

mod answer;
mod body;
mod context;
mod exchange;
mod file;
mod head_fields;
mod request;
mod upgrade;

pub use body::{BodyError, RequestBody};
pub use file::{file_response, SendFile};

use app_abi::{InitContext, Logger, Request, Response};
use exchange::{Exchange, LazyWake};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;
use tokio::runtime::Runtime;
use tower_service::Service;

/// The error type tower services commonly box theirs into.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The app argument that sets the runtime's worker threads: `--worker-threads N` or `=N`.
const WORKER_THREADS_ARG: &str = "--worker-threads";

/// The app arguments (the words after `LIB:SYMBOL` on the server's command line), for the
/// service factory; empty before `init`. Invalid UTF-8 is replaced by U+FFFD.
pub fn app_args() -> &'static [String] {
    APP_ARGS.get().map_or(&[], Vec::as_slice)
}

static APP_ARGS: OnceLock<Vec<String>> = OnceLock::new();

/// Starts one request: the service (cloned) with the request, the server's half of its body, the
/// request's waker and logger → the response, answered in `call` if the service is ready at once
/// (`answer.rs`), else deferred.
type Start = Box<
    dyn Fn(
            &mut Request<'_>,
            http::Request<RequestBody>,
            Option<body::Upload>,
            Option<Arc<LazyWake>>,
            Option<upgrade::Probe>,
            Logger,
        ) -> Response
        + Send
        + Sync,
>;

/// How long `shutdown` waits for the runtime's threads before it says which ones it waits for:
/// idle threads end at once, so one still running after this is busy with work that has not
/// returned.
const SHUTDOWN_SETTLE: Duration = Duration::from_millis(500);

/// The app behind [`export_service!`]: a runtime and a type-erased service. Not used directly.
pub struct TowerApp {
    runtime: Mutex<Option<Runtime>>,
    /// The runtime's handle, where upgrade requests' hyper connections run (`upgrade.rs`).
    handle: tokio::runtime::Handle,
    /// Whether the server offers upgrades (ABI 1.2): else upgrade requests are served as any
    /// request, and axum answers them 426 (it finds no `OnUpgrade`).
    upgrades: bool,
    threads: Arc<LiveThreads>,
    start: Start,
    logger: Logger,
}

/// The runtime's live threads (its workers and its blocking pool's), counted by its thread
/// start/stop hooks: what `shutdown` waits for, and can count in its log line.
#[derive(Default)]
struct LiveThreads {
    live: Mutex<usize>,
    changed: Condvar,
}

impl LiveThreads {
    fn count(&self) -> std::sync::MutexGuard<'_, usize> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn started(&self) {
        *self.count() += 1;
    }

    fn stopped(&self) {
        let mut live = self.count();
        *live = live.saturating_sub(1);
        self.changed.notify_all();
    }

    /// Waits until no thread is left, at most `limit` (`None`: no limit); the threads left.
    fn wait_for_none(&self, limit: Option<Duration>) -> usize {
        let live = self.count();
        let left = match limit {
            Some(limit) => {
                self.changed
                    .wait_timeout_while(live, limit, |n| *n > 0)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => self
                .changed
                .wait_while(live, |n| *n > 0)
                .unwrap_or_else(|e| e.into_inner()),
        };
        *left
    }
}

impl TowerApp {
    /// `App::init`: runtime first, then the service, built inside it.
    pub fn init<F, S, B>(ctx: &InitContext<'_>, make: F) -> Result<TowerApp, String>
    where
        F: FnOnce() -> S,
        S: Service<http::Request<RequestBody>, Response = http::Response<B>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError> + Send,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError> + Send,
    {
        ctx.require_abi_1_1()?;
        let args: Vec<String> = ctx
            .args()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let threads = worker_threads(&args)?;
        let _ = APP_ARGS.set(args);
        let live = Arc::new(LiveThreads::default());
        let (on_start, on_stop) = (live.clone(), live.clone());
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder
            .thread_name("app-runtime")
            .enable_all()
            .on_thread_start(move || on_start.started())
            .on_thread_stop(move || on_stop.stopped());
        if let Some(n) = threads {
            builder.worker_threads(n);
        }
        let runtime = builder
            .build()
            .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
        let service = {
            let _inside = runtime.enter();
            make()
        };
        let app_runtime = context::AppRuntime::new(runtime.handle().clone());
        let start: Start = Box::new(move |call, req, upload, wake, probe, logger| {
            let exchange = Exchange::new(
                service.clone(),
                req,
                upload,
                wake,
                probe,
                app_runtime.clone(),
                logger,
            );
            answer::answer(exchange, call)
        });
        let upgrades = upgrade::offered(ctx);
        if !ctx.host_is_1_3() {
            ctx.warn("this server speaks an ABI older than 1.3: response trailers (gRPC's status) cannot be sent and request trailers are not seen; upgrade webserver");
        }
        ctx.info(&format!(
            "tokio runtime with {} worker threads",
            runtime.metrics().num_workers()
        ));
        Ok(TowerApp {
            handle: runtime.handle().clone(),
            upgrades,
            runtime: Mutex::new(Some(runtime)),
            threads: live,
            start,
            logger: ctx.logger(),
        })
    }

    /// `App::call`: polls the service once and answers if it is ready, else returns a deferred
    /// body whose `next` polls it again (`answer.rs`, `exchange.rs`).
    pub fn call(&self, req: &mut Request<'_>) -> Response {
        let request::Head {
            request: mut head,
            has_body,
            has_upgrade,
            has_expect,
            length,
        } = match Self::head(req) {
            Ok(head) => head,
            Err(err) => {
                req.error(&format!("cannot build the http::Request: {err}"));
                return Response::text(400, "Bad Request\n");
            }
        };
        // The body's channel wakes the request through it; without one it is made only if the
        // service pends (`exchange.rs`).
        let wake = has_body.then(|| Arc::new(LazyWake::default()));
        let (body, upload) = match &wake {
            Some(wake) => body::for_request(req, (&head, has_expect), length, wake.clone()),
            None => (RequestBody::empty(), None),
        };
        let probe = if self.upgrades && has_upgrade && upgrade::wants_upgrade(&head, has_body) {
            match upgrade::probe(&mut head, &self.handle) {
                Ok(probe) => Some(probe),
                Err(err) => {
                    // Served as on a server without upgrades: axum answers 426.
                    req.error(&format!("cannot prepare the upgrade: {err}"));
                    None
                }
            }
        } else {
            None
        };
        let logger = req.logger();
        (self.start)(req, head.map(|()| body), upload, wake, probe, logger)
    }

    /// The request head: from the parts the server parsed (ABI 1.3 `request_parts`), else
    /// converted back from the environ.
    fn head(req: &Request<'_>) -> Result<request::Head, request::BuildError> {
        if let Some(parts) = req.parts() {
            if let Some(head) = request::head_from_parts(&parts)? {
                return Ok(head);
            }
            // A target `http::Uri` refuses is escaped from the parts too: the app reads no
            // environ (`WS_APP_NO_ENVIRON`), so a server that knows the flag builds none.
            return request::head_from_escaped_parts(&parts);
        }
        request::head_from_environ(req.vars())
    }

    /// `App::shutdown`: every request is closed by now. Stopping the runtime drops its tasks;
    /// then this waits for its threads (as dropping it would), so none runs app code once the
    /// app is shut down. A blocking task cannot be cancelled: one that never returns keeps its
    /// thread, so it is logged, and the server ends the process at its `--graceful-timeout`.
    pub fn shutdown(&self) {
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(runtime) = runtime else {
            return;
        };
        runtime.shutdown_background();
        let busy = self.threads.wait_for_none(Some(SHUTDOWN_SETTLE));
        if busy > 0 {
            self.logger.warn(&format!(
                "shutdown: {busy} thread(s) of the app's tokio runtime still running after {} ms \
                 (spawn_blocking work that has not returned; it cannot be cancelled); waiting for \
                 them until the server's --graceful-timeout, then they are abandoned",
                SHUTDOWN_SETTLE.as_millis()
            ));
            self.threads.wait_for_none(None);
        }
    }
}

/// `--worker-threads N` / `--worker-threads=N` among the app arguments.
fn worker_threads(args: &[String]) -> Result<Option<usize>, String> {
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let value = if word == WORKER_THREADS_ARG {
            words.next().map(String::as_str)
        } else if let Some(v) = word.strip_prefix(WORKER_THREADS_ARG) {
            match v.strip_prefix('=') {
                Some(v) => Some(v),
                None => continue,
            }
        } else {
            continue;
        };
        return match value.and_then(|v| v.parse::<usize>().ok()) {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!(
                "{WORKER_THREADS_ARG} needs a positive number of threads, e.g. {WORKER_THREADS_ARG}=4"
            )),
        };
    }
    Ok(None)
}

/// Exports a tower service factory as a webserver app (a `#[no_mangle]` `ws_app` descriptor).
///
/// ```ignore
/// webserver_tower::export_service!(app, router);                     // fn router() -> Router
/// webserver_tower::export_service!(app, || router(state()), name = "api", version = "2.1");
/// ```
///
/// The factory runs once per worker process, inside the app's runtime; the service is cloned per
/// request (as hyper does). `name` and `version` default to the crate's. Load it as
/// `webserver libNAME.so:app [--worker-threads N] [ARGS]...`; [`app_args`] gives the arguments.
#[macro_export]
macro_rules! export_service {
    ($symbol:ident, $make:expr $(,)?) => {
        $crate::export_service!(
            $symbol,
            $make,
            name = env!("CARGO_PKG_NAME"),
            version = env!("CARGO_PKG_VERSION")
        );
    };
    ($symbol:ident, $make:expr, name = $name:expr, version = $version:expr $(,)?) => {
        const _: () = {
            pub struct ExportedService($crate::TowerApp);

            impl $crate::__private::App for ExportedService {
                fn init(ctx: &$crate::__private::InitContext<'_>) -> Result<Self, String> {
                    $crate::TowerApp::init(ctx, $make).map(ExportedService)
                }

                fn call(
                    &self,
                    req: &mut $crate::__private::Request<'_>,
                ) -> $crate::__private::Response {
                    self.0.call(req)
                }

                fn shutdown(&self) {
                    self.0.shutdown()
                }
            }

            // `call` and `next` return at once (a future that is not ready parks the request),
            // so a server may run them on its event thread (HTTP/2 streams on the HTTP/2 thread),
            // as hyper runs a service on the thread of its connection. The request is built from
            // the parts the server parsed (ABI 1.3), not converted back from the environ, which
            // the server then need not build at all.
            $crate::__private::export_app!(
                $symbol,
                ExportedService,
                name = $name,
                version = $version,
                flags = $crate::__private::WS_APP_NONBLOCKING
                    | $crate::__private::WS_APP_REQUEST_PARTS
                    | $crate::__private::WS_APP_NO_ENVIRON
                    | $crate::__private::WS_APP_LENGTH_ENDS_BODY
            );
        };
    };
}

/// What [`export_service!`] expands to needs; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use app_abi::raw::{
        WS_APP_LENGTH_ENDS_BODY, WS_APP_NONBLOCKING, WS_APP_NO_ENVIRON, WS_APP_REQUEST_PARTS,
    };
    pub use app_abi::{export_app, App, InitContext, Request, Response};
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn worker_threads_come_from_the_app_arguments() {
        assert_eq!(worker_threads(&args(&[])), Ok(None));
        assert_eq!(worker_threads(&args(&["config.toml"])), Ok(None));
        assert_eq!(
            worker_threads(&args(&["x", "--worker-threads", "3"])),
            Ok(Some(3))
        );
        assert_eq!(worker_threads(&args(&["--worker-threads=2"])), Ok(Some(2)));
        assert_eq!(worker_threads(&args(&["--worker-threadsX"])), Ok(None));
        for bad in [
            &["--worker-threads"][..],
            &["--worker-threads=0"],
            &["--worker-threads=x"],
        ] {
            let err = worker_threads(&args(bad)).unwrap_err();
            assert!(err.contains("positive number"), "{err}");
        }
    }
}
