//! Noticing a worker that stopped reporting: a process stopped (`kill -STOP`, a debugger), frozen
//! in the kernel, or wedged so badly that its heartbeat thread cannot run. Its own `--timeout`
//! watch cannot fire then, so the master does what gunicorn's arbiter and uWSGI's harakiri do:
//! kill it and replace it.
//!
//! Every worker says `alive` a few times per `--timeout` from its start to its exit, whatever it
//! is doing: booting (a slow `init` that keeps the process running is not silent), serving a
//! long request, draining. Only silence counts. `master.rs` reads every pipe right before each
//! `Tick`, so a master that was itself busy (copying a library) does not mistake the news waiting
//! in a pipe for silence. A worker that has not said anything yet is still starting its process
//! (exec, the runtime; no app code yet), which a loaded machine can make slow: it gets at least
//! `FIRST_WORD_GRACE`.

use std::time::{Duration, Instant};

use super::{Generations, State};
use crate::sys::process::Signal;

/// The least patience for a worker's first word (its first heartbeat, sent as soon as its
/// process runs).
pub(crate) const FIRST_WORD_GRACE: Duration = Duration::from_secs(5);

impl Generations {
    /// Kill (SIGKILL) every worker silent for `--timeout`, with one log line each. A live
    /// generation's worker is replaced at once; a booting generation's fails its swap.
    pub(super) fn kill_silent_workers(&mut self, now: Instant) {
        let Some(timeout) = self.heartbeat_timeout else {
            return;
        };
        let silent: Vec<(i32, u64, f64)> = self
            .workers
            .iter()
            .filter(|w| {
                let patience = if w.heard {
                    timeout
                } else {
                    timeout.max(FIRST_WORD_GRACE)
                };
                !w.silenced && now.saturating_duration_since(w.last_heard) >= patience
            })
            .map(|w| {
                let silence = now.saturating_duration_since(w.last_heard);
                (w.pid, w.generation, silence.as_secs_f64())
            })
            .collect();
        for (pid, id, silence) in silent {
            if let Some(worker) = self.workers.iter_mut().find(|w| w.pid == pid) {
                worker.silenced = true;
                // Its replacement need not wait for the kill to be reaped.
                worker.retiring = true;
            }
            self.signal(pid, Signal::Kill);
            let (state, lib) = match self.generations.iter().find(|g| g.id == id) {
                Some(g) => (Some(g.state), g.artifact.source.display().to_string()),
                None => (None, self.source.display().to_string()),
            };
            let silent_for = format!(
                "worker {pid} (generation {id}, {lib}) sent no heartbeat for {silence:.1}s (stopped or frozen; --timeout {}s)",
                timeout.as_secs_f64()
            );
            match state {
                Some(State::Booting) => {
                    let message = format!("{silent_for} while loading; killed it with SIGKILL");
                    self.swap_failed(id, &message);
                }
                Some(State::Live) if !self.is_stopping() => self.log(
                    log::Level::Error,
                    format!("{silent_for}; killing it with SIGKILL and replacing it"),
                ),
                _ => self.log(
                    log::Level::Error,
                    format!("{silent_for}; killing it with SIGKILL"),
                ),
            }
        }
    }
}
