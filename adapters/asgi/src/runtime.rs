//! The worker's event loop and what runs on it: one asyncio (or uvloop) loop on its own thread,
//! started in `init` and stopped and joined in `shutdown`; the app, normalised to ASGI 3; the
//! lifespan protocol around the worker's life; and the calls serving threads make to hand work
//! to the loop, through its [`Inbox`] and without the GIL: the loop thread builds every scope and
//! runs every coroutine, a serving thread only queues.
//!
//! The asyncio side is Python (`bridge.py`, compiled into this library): what it does is
//! asyncio's own business, and as Python it is what an ASGI server author reads.

use crate::config::{Config, LoopKind};
use crate::exchange::{Channel, Shared};
use crate::inbox::{Inbox, Job, Vars};
use crate::scope;
use crate::watchdog::Watchdog;
use app_abi::Logger;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};
use python_embed::interpreter::{self, LoadError};
use python_embed::python_thread::with_gil_continuing;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const BRIDGE_PY: &str = include_str!("bridge.py");
/// How long `shutdown` waits for the app's lifespan shutdown.
const LIFESPAN_SHUTDOWN_SECS: f64 = 10.0;
/// How long a failed `init` waits for the stopped loop's thread to end: a startup that blocks
/// the loop (a call that does not await) keeps it from stopping, and the worker exits anyway.
const STUCK_LOOP_GRACE: Duration = Duration::from_secs(2);

/// One worker's loop and app.
pub(crate) struct Runtime {
    bridge: Py<PyModule>,
    event_loop: PyObject,
    /// The running lifespan protocol, if the app speaks it.
    lifespan: Option<PyObject>,
    /// Where serving threads queue work for the loop.
    inbox: Arc<Inbox>,
    thread: Mutex<Option<JoinHandle<()>>>,
    watchdog: Watchdog,
    logger: Logger,
}

/// The loop thread, stopped on drop (so a failed `init` leaves no thread behind) and joined
/// if it ends within [`STUCK_LOOP_GRACE`].
struct LoopThread {
    event_loop: PyObject,
    thread: Option<JoinHandle<()>>,
    /// Disconnected when the thread ends.
    ended: mpsc::Receiver<()>,
}

impl Drop for LoopThread {
    fn drop(&mut self) {
        // Taken (`thread: None`) when the runtime keeps the loop running.
        if let Some(thread) = self.thread.take() {
            request_stop(&self.event_loop);
            // Waited for without the GIL: the loop thread needs it to finish.
            if self.ended.recv_timeout(STUCK_LOOP_GRACE) == Err(mpsc::RecvTimeoutError::Timeout) {
                // Blocked in app code: left to end with the process, which exits as init failed.
                return;
            }
            let _ = thread.join();
        }
    }
}

fn request_stop(event_loop: &PyObject) {
    with_gil_continuing(|py| {
        let stop = event_loop.getattr(py, "stop")?;
        event_loop.call_method1(py, "call_soon_threadsafe", (stop,))
    })
    .ok();
}

fn stop_and_join(event_loop: &PyObject, thread: Option<JoinHandle<()>>) {
    request_stop(event_loop);
    // Joined without the GIL: the loop thread needs it to finish.
    if let Some(thread) = thread {
        let _ = thread.join();
    }
}

impl Runtime {
    /// Imports the app, starts the loop and runs the lifespan startup: `Ok` once the app is ready
    /// to serve. Errors are one line (the whole traceback is logged at debug level).
    /// `trailers`: the server sends response trailers (ABI 1.3), so scopes offer the extension.
    pub(crate) fn start(
        config: &Config,
        logger: Logger,
        trailers: bool,
    ) -> Result<Runtime, String> {
        let target = &config.target;
        let (bridge, app, asgi_version) = Python::with_gil(|py| {
            let bridge =
                PyModule::from_code_bound(py, BRIDGE_PY, "webserver_asgi.py", "webserver_asgi")
                    .map_err(|e| {
                        format!(
                            "the ASGI bridge's Python part failed: {}",
                            interpreter::last_line(py, &e)
                        )
                    })?;
            let object = interpreter::import_target(py, target).map_err(|err: LoadError| {
                if let Some(tb) = &err.traceback {
                    logger.debug(&format!("ASGI app {target} failed to load:\n{tb}"));
                }
                err.message
            })?;
            let normalised = bridge.call_method1("as_asgi3", (&object,)).map_err(|err| {
                if err.is_instance_of::<pyo3::exceptions::PyTypeError>(py)
                    && err
                        .value_bound(py)
                        .get_type()
                        .name()
                        .is_ok_and(|n| n == "WsgiApp")
                {
                    format!(
                        "{target} is a WSGI app (it takes environ, start_response), not an ASGI \
                         one: serve it with `webserver wsgi:app {target}`"
                    )
                } else {
                    format!("{target}: {}", interpreter::last_line(py, &err))
                }
            })?;
            let (app, version): (PyObject, String) =
                normalised.extract().map_err(|e| e.to_string())?;
            let version = if version == "2.0" { "2.0" } else { "3.0" };
            Ok::<_, String>((bridge.unbind(), app, version))
        })?;
        let (loop_thread, loop_name) = spawn_loop(&bridge, config.event_loop, logger)?;
        let state = Python::with_gil(|py| PyDict::new_bound(py).unbind());
        let lifespan = lifespan_startup(
            &bridge,
            &loop_thread.event_loop,
            &app,
            asgi_version,
            &state,
            config,
            logger,
        )?;
        let label: Arc<str> = Arc::from(target.to_string());
        let watchdog = Watchdog::start(&bridge, &loop_thread.event_loop, label, logger)?;
        let mut loop_thread = loop_thread;
        let thread = loop_thread.thread.take();
        let event_loop = Python::with_gil(|py| loop_thread.event_loop.clone_ref(py));
        drop(loop_thread);
        let inbox =
            Arc::new(Inbox::new().map_err(|e| format!("cannot make the event loop's inbox: {e}"))?);
        Python::with_gil(|py| {
            let drain = Py::new(
                py,
                Drain {
                    inbox: Arc::clone(&inbox),
                    event_loop: event_loop.clone_ref(py),
                    app: app.clone_ref(py),
                    asgi_version,
                    trailers,
                    state: state.clone_ref(py),
                    wake: bridge.getattr(py, "_wake")?,
                    start: bridge.getattr(py, "_start")?,
                    logger,
                },
            )?;
            bridge
                .call_method1(py, "watch_inbox", (&event_loop, inbox.reader_fd(), drain))
                .map(drop)
        })
        .map_err(|e| format!("cannot watch the event loop's inbox: {e}"))?;
        logger.info(&format!(
            "ASGI {asgi_version} app {target} on {loop_name}{}",
            if lifespan.is_some() {
                ", lifespan started"
            } else {
                ""
            }
        ));
        Ok(Runtime {
            bridge,
            event_loop,
            lifespan,
            inbox,
            thread: Mutex::new(thread),
            watchdog,
            logger,
        })
    }

    /// Starts the app on the loop for one request (a serving thread; no GIL needed).
    pub(crate) fn spawn(&self, vars: Vars, shared: Arc<Shared>) {
        self.inbox.push(Job::Start(vars, shared));
    }

    /// Resumes the coroutine awaiting `fut` (any thread; no GIL needed).
    pub(crate) fn resume(&self, fut: PyObject) {
        self.inbox.push(Job::Resume(fut));
    }

    /// Cancels the coroutine serving `shared`'s request (any thread; no GIL needed).
    pub(crate) fn cancel(&self, shared: &Arc<Shared>) {
        self.inbox.push(Job::Cancel(Arc::clone(shared)));
    }

    /// The lifespan shutdown, then the loop stops and its thread is joined.
    pub(crate) fn stop(&self) {
        // Before the shutdown blocks the loop's clock on purpose.
        self.watchdog.stop();
        if let Some(lifespan) = &self.lifespan {
            let outcome = with_gil_continuing(|py| {
                self.bridge
                    .call_method1(
                        py,
                        "lifespan_shutdown",
                        (&self.event_loop, lifespan, LIFESPAN_SHUTDOWN_SECS),
                    )
                    .and_then(|o| o.extract::<(String, Option<String>)>(py))
            });
            match outcome {
                Ok((what, _)) if what == "ok" => {}
                Ok((_, message)) => self.logger.error(&format!(
                    "ASGI lifespan shutdown failed: {}",
                    message.as_deref().unwrap_or("(no message)")
                )),
                Err(err) => self
                    .logger
                    .error(&format!("ASGI lifespan shutdown failed: {err}")),
            }
        }
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        stop_and_join(&self.event_loop, thread);
    }
}

/// Starts the loop thread; returns it with the loop's name ("uvloop 0.21.0", "asyncio").
fn spawn_loop(
    bridge: &Py<PyModule>,
    kind: LoopKind,
    logger: Logger,
) -> Result<(LoopThread, String), String> {
    let (tx, rx) = mpsc::channel::<Result<(PyObject, String), String>>();
    let (ended_tx, ended) = mpsc::channel::<()>();
    let bridge = Python::with_gil(|py| bridge.clone_ref(py));
    let thread = std::thread::Builder::new()
        .name("asgi-loop".to_owned())
        .spawn(move || {
            let _ended = ended_tx;
            crate::yield_to_loop::mark_this_thread();
            Python::with_gil(|py| {
                let made = bridge
                    .call_method1(py, "new_loop", (kind.name(),))
                    .and_then(|made| made.extract::<(PyObject, String)>(py));
                let event_loop = match made {
                    Ok((event_loop, name)) => {
                        let _ = tx.send(Ok((event_loop.clone_ref(py), name)));
                        event_loop
                    }
                    Err(err) => {
                        let why = interpreter::last_line(py, &err);
                        let _ = tx.send(Err(match kind {
                            LoopKind::Uvloop => format!(
                                "--loop uvloop: {why}: install it in the app's virtualenv \
                                 (pip install uvloop) or use --loop asyncio"
                            ),
                            _ => format!("cannot make the event loop: {why}"),
                        }));
                        return;
                    }
                };
                // Runs until `stop_and_join`; app errors never reach here (they end their task).
                if let Err(err) = bridge.call_method1(py, "run_loop", (event_loop,)) {
                    logger.error(&format!("ASGI event loop stopped: {err}"));
                }
            })
        })
        .map_err(|e| format!("cannot start the event loop thread: {e}"))?;
    // Waited for without the GIL: the loop thread needs it to make the loop.
    match rx.recv() {
        Ok(Ok((event_loop, name))) => Ok((
            LoopThread {
                event_loop,
                thread: Some(thread),
                ended,
            },
            name,
        )),
        Ok(Err(message)) => {
            let _ = thread.join();
            Err(message)
        }
        Err(_) => {
            let _ = thread.join();
            Err("the event loop thread ended before its loop was made".to_owned())
        }
    }
}

/// Runs the lifespan startup and waits for its outcome: the lifespan to keep, `None` when the
/// app does not speak the protocol, `Err` (one line) when its startup failed or did not finish
/// within `--startup-timeout` (then it is cancelled, and the line says where it waited).
fn lifespan_startup(
    bridge: &Py<PyModule>,
    event_loop: &PyObject,
    app: &PyObject,
    version: &str,
    state: &Py<PyDict>,
    config: &Config,
    logger: Logger,
) -> Result<Option<PyObject>, String> {
    let target = &config.target;
    Python::with_gil(|py| {
        let started = bridge
            .call_method1(py, "lifespan_startup", (event_loop, app, version, state))
            .and_then(|r| r.extract::<(PyObject, PyObject)>(py));
        let (lifespan, fut) =
            started.map_err(|e| format!("cannot start the lifespan protocol: {e}"))?;
        // `result()` waits with the GIL released, so the loop thread runs the startup.
        let timeout = config.startup_timeout.as_secs_f64();
        let outcome = fut
            .call_method1(py, "result", (timeout,))
            .and_then(|r| r.extract::<(String, Option<String>)>(py));
        let (what, message) = match outcome {
            Ok(outcome) => outcome,
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyTimeoutError>(py) => {
                let place = bridge
                    .call_method1(py, "lifespan_stuck", (event_loop, &lifespan))
                    .and_then(|w| w.extract::<String>(py))
                    .unwrap_or_else(|e| format!("(cannot tell where: {e})"));
                return Err(format!(
                    "lifespan startup of {target} did not finish within {timeout} s \
                     (--startup-timeout): it waits at {place}"
                ));
            }
            Err(e) => {
                return Err(format!(
                    "lifespan startup of {target}: {}",
                    interpreter::last_line(py, &e)
                ))
            }
        };
        let summary = |text: &Option<String>| -> String {
            bridge
                .call_method1(py, "summary", (text.as_deref(),))
                .and_then(|s| s.extract(py))
                .unwrap_or_default()
        };
        match what.as_str() {
            "ok" => Ok(Some(lifespan)),
            "unsupported" => {
                if let Some(tb) = &message {
                    logger.debug(&format!(
                        "ASGI app {target} does not speak the lifespan protocol (it raised on the \
                         lifespan scope), served without it:\n{tb}"
                    ));
                }
                Ok(None)
            }
            _ => {
                if let Some(text) = &message {
                    logger.debug(&format!(
                        "ASGI app {target}: lifespan startup failed:\n{text}"
                    ));
                }
                Err(format!(
                    "lifespan startup of {target} failed: {}",
                    summary(&message)
                ))
            }
        }
    })
}

/// The loop's side of the inbox: `bridge.py` calls it when the inbox's socket is readable.
#[pyclass]
struct Drain {
    inbox: Arc<Inbox>,
    event_loop: PyObject,
    /// The app as an ASGI 3 callable.
    app: PyObject,
    /// "3.0", or "2.0" for an ASGI 2 app (wrapped).
    asgi_version: &'static str,
    /// Scopes offer `http.response.trailers` (the server speaks ABI 1.3).
    trailers: bool,
    /// The lifespan `state`, copied into every request's scope.
    state: Py<PyDict>,
    /// `bridge._wake`.
    wake: PyObject,
    /// `bridge._start`, looked up once rather than per request.
    start: PyObject,
    logger: Logger,
}

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) {
        for job in self.inbox.take() {
            match job {
                Job::Start(vars, shared) => {
                    if let Err(err) = self.start(py, &vars, &shared) {
                        shared.fail_to_start(&format!("{err}"));
                    }
                }
                Job::Resume(fut) => {
                    if let Err(err) = self.wake.call1(py, (fut,)) {
                        self.logger
                            .error(&format!("ASGI bridge: cannot resume a request: {err}"));
                    }
                }
                Job::Cancel(shared) => {
                    if let Some(task) = shared.take_task() {
                        if let Err(err) = task.call_method0(py, "cancel") {
                            self.logger
                                .error(&format!("ASGI bridge: cannot cancel a request: {err}"));
                        }
                    }
                }
            }
        }
    }
}

impl Drain {
    fn start(&self, py: Python<'_>, vars: &Vars, shared: &Arc<Shared>) -> PyResult<()> {
        let scope = scope::build(
            py,
            vars.iter(),
            self.asgi_version,
            self.state.bind(py),
            shared.is_websocket(),
            self.trailers,
        )?;
        let chan = Py::new(py, Channel::new(Arc::clone(shared)))?;
        self.start
            .call1(py, (&self.event_loop, &self.app, scope, chan))
            .map(drop)
    }
}
