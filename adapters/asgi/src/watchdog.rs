//! Noticing a blocked event loop. A coroutine that runs without awaiting (CPU work, a blocking
//! call) holds up every request of its worker, as under uvicorn; the worker itself stays alive
//! (its heartbeat is a thread of the server's that never takes the GIL, so the master does not
//! take it for frozen, and `--timeout` still answers the waiting requests 504). What the operator
//! needs is why: the loop says it runs every [`TICK`] ([`LoopClock`], on the loop), and a thread
//! of this bridge logs when it has not for [`BLOCKED_AFTER`] — one line at once (without the
//! GIL, so it is written even when C code holds the GIL), one with where the loop thread runs
//! (with it) — and one when the loop runs again.

use app_abi::Logger;
use pyo3::prelude::*;
use pyo3::types::PyModule;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the loop says it runs.
const TICK: Duration = Duration::from_millis(200);
/// How long the loop may not run before it is reported blocked (asyncio's debug mode warns
/// about a callback that takes 0.1 s; this reports what holds every request up).
const BLOCKED_AFTER: Duration = Duration::from_secs(1);

/// The loop's side: `beat()` on every tick.
#[pyclass]
pub(crate) struct LoopClock {
    base: Instant,
    /// Milliseconds since `base` at the last beat.
    last: Arc<AtomicU64>,
}

#[pymethods]
impl LoopClock {
    fn beat(&self) {
        self.last.store(millis(self.base), Ordering::Relaxed);
    }
}

fn millis(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The watching thread, stopped and joined by [`Watchdog::stop`] (or on drop).
pub(crate) struct Watchdog {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Watchdog {
    /// Starts the loop's clock and the thread that watches it.
    pub(crate) fn start(
        bridge: &Py<PyModule>,
        event_loop: &PyObject,
        label: Arc<str>,
        logger: Logger,
    ) -> Result<Watchdog, String> {
        let base = Instant::now();
        let last = Arc::new(AtomicU64::new(0));
        Python::with_gil(|py| {
            let clock = Py::new(
                py,
                LoopClock {
                    base,
                    last: Arc::clone(&last),
                },
            )?;
            bridge
                .call_method1(py, "start_clock", (event_loop, clock, TICK.as_secs_f64()))
                .map(drop)
        })
        .map_err(|e| format!("cannot start the event loop's clock: {e}"))?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let watch = Watch {
            bridge: Python::with_gil(|py| bridge.clone_ref(py)),
            base,
            last,
            label,
            logger,
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name("asgi-watchdog".to_owned())
            .spawn(move || watch.run())
            .map_err(|e| format!("cannot start the event loop's watchdog thread: {e}"))?;
        Ok(Watchdog {
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops and joins the thread (call without the GIL: the thread may be waiting for it).
    pub(crate) fn stop(&self) {
        let (flag, cvar) = &*self.stop;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the watching thread owns.
struct Watch {
    bridge: Py<PyModule>,
    base: Instant,
    last: Arc<AtomicU64>,
    label: Arc<str>,
    logger: Logger,
    stop: Arc<(Mutex<bool>, Condvar)>,
}

impl Watch {
    fn run(self) {
        let blocked_after = u64::try_from(BLOCKED_AFTER.as_millis()).unwrap_or(u64::MAX);
        // The longest silence of the blockage being reported, if one is.
        let mut blocked: Option<u64> = None;
        loop {
            {
                let (flag, cvar) = &*self.stop;
                let stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
                let (stopped, _) = cvar
                    .wait_timeout_while(stopped, TICK, |stopped| !*stopped)
                    .unwrap_or_else(|e| e.into_inner());
                if *stopped {
                    return;
                }
            }
            let silence = millis(self.base).saturating_sub(self.last.load(Ordering::Relaxed));
            match blocked {
                None if silence >= blocked_after => {
                    blocked = Some(silence);
                    self.report(silence);
                }
                Some(longest) if silence >= blocked_after => blocked = Some(longest.max(silence)),
                Some(longest) => {
                    blocked = None;
                    self.logger.warn(&format!(
                        "ASGI event loop of {} runs again after about {:.1} s blocked",
                        self.label,
                        longest as f64 / 1000.0
                    ));
                }
                None => {}
            }
        }
    }

    fn report(&self, silence: u64) {
        self.logger.warn(&format!(
            "ASGI event loop of {} has not run for {:.1} s: a coroutine blocks it (CPU work, or a \
             blocking call that does not await), and every request of this worker waits (--timeout \
             answers them 504). Await, move the work off the loop (asyncio.to_thread, \
             loop.run_in_executor) or run more workers (-w)",
            self.label,
            silence as f64 / 1000.0
        ));
        // The GIL may be had only once the blocking code lets go of it (Python code does, every
        // few milliseconds); the line above is out already.
        let place = Python::with_gil(|py| {
            self.bridge
                .call_method0(py, "where_blocked")
                .and_then(|w| w.extract::<String>(py))
        });
        match place {
            Ok(place) => self.logger.warn(&format!(
                "ASGI event loop of {} is blocked at {place}",
                self.label
            )),
            Err(err) => self.logger.debug(&format!(
                "ASGI event loop of {}: cannot tell where it is blocked: {err}",
                self.label
            )),
        }
    }
}
