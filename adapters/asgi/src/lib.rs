//! `libasgi.so`: a webserver app that embeds CPython and serves an ASGI application —
//! `webserver asgi:app main:app` serves what `uvicorn main:app` serves (FastAPI, Starlette, any
//! ASGI 3 or ASGI 2 app), on this server's workers, threads and hot swap.
//!
//! How it runs (ABI 1.1 deferred responses; see `app-abi/include/webserver_app.h`):
//! - `init` starts Python with the app's virtualenv, imports `module:callable` (a WSGI app is
//!   refused with the command that serves it), starts one event loop on its own thread (uvloop
//!   when installed, `--loop` to choose) and runs the lifespan startup: the worker reports ready
//!   only after it, and a failing startup (or one that outlasts `--startup-timeout`) fails `init`
//!   with one line. A watchdog thread ([`watchdog`]) logs when the loop is blocked, and where.
//! - `call` copies the request's variables into the loop's [`inbox`] (no GIL) and returns a
//!   deferred body at once: no serving thread waits for the app, nor for the GIL; the loop
//!   builds the `http` (or `websocket`) scope ([`scope`]) and starts the app's coroutine.
//! - The coroutine's `receive` and `send` meet the server in the request's shared state
//!   ([`exchange`]): `send` queues and wakes the request (its waker), and the server's next `next`
//!   starts the response and returns the chunks; `receive` asks for body bytes, which `next` reads
//!   without waiting.
//! - The worker's threads give way to each other when woken ([`yield_to_loop`]): on a busy CPU
//!   the loop runs its turn through, the serving threads then write its responses in one go, and
//!   the loop takes the requests they queued meanwhile in its next turn.
//! - `shutdown` runs the lifespan shutdown, stops the loop and joins its thread.
//!
//! Written against app-abi's safe layer: its `export_app!` keeps panics from crossing the ABI.

mod config;
mod exchange;
mod inbox;
mod runtime;
mod scope;
mod watchdog;
mod websocket;
mod yield_to_loop;

use app_abi::raw::WS_REQ_WEBSOCKET;
use app_abi::{export_app, App, InitContext, Request, Response};
use exchange::{Body, RawIo, Shared};
use inbox::Vars;
use runtime::Runtime;
use std::sync::Arc;

/// The app state: the worker's loop and app.
struct AsgiApp {
    runtime: Arc<Runtime>,
    /// `module:callable`, for log lines.
    label: Arc<str>,
}

impl App for AsgiApp {
    fn init(ctx: &InitContext<'_>) -> Result<Self, String> {
        ctx.require_abi_1_1()?;
        let args: Vec<String> = ctx
            .args()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let config = config::Config::from_args_and_env(&args, |k| std::env::var(k).ok())?;
        python_embed::interpreter::start(config.venv.as_deref())?;
        let runtime = Runtime::start(&config, ctx.logger(), ctx.host_is_1_3())?;
        Ok(AsgiApp {
            runtime: Arc::new(runtime),
            label: Arc::from(config.target.to_string()),
        })
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        yield_to_loop::mark_this_thread();
        let Some(waker) = req.waker() else {
            req.error("ASGI bridge: the server gave no waker for this request");
            return Response::new(500);
        };
        let logger = req.logger();
        let runtime = &self.runtime;
        let raw = req.as_raw();
        // SAFETY: the host vtable is the server's, static for the life of the process.
        let host = unsafe { raw.host.as_ref() }.filter(|_| raw.flags & WS_REQ_WEBSOCKET != 0);
        let raw_io = host.map(|host| RawIo { host, io: raw.io });
        let ws = raw_io.map(|_| Arc::new(websocket::WsShared::new(Arc::clone(runtime), logger)));
        // No GIL here: the variables are copied and queued, the loop builds the scope.
        let vars = Vars::copy(|| req.vars());
        let shared = Arc::new(Shared::new(
            waker,
            logger,
            Arc::clone(&self.label),
            scope::body_empty(vars.iter()),
            ws,
        ));
        runtime.spawn(vars, Arc::clone(&shared));
        Response::deferred(Body::new(shared, Arc::clone(runtime), raw_io))
    }

    fn shutdown(&self) {
        self.runtime.stop();
    }
}

export_app!(
    app,
    AsgiApp,
    name = "asgi",
    version = env!("CARGO_PKG_VERSION")
);
