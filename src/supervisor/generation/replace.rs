//! Exits and replacements: what a worker's exit means (a crash, a harakiri, a recycle, the end of
//! a drain), and keeping the live generation at its wanted number of workers, with back-off for
//! replacements that die before they are ready.

use std::time::Instant;

use super::{Generations, State, BACKOFF_MAX};
use crate::exit::HARAKIRI;
use crate::sys::process::{ChildExit, Signal};

impl Generations {
    /// Decide what a worker's exit means.
    pub(super) fn on_exit(&mut self, pid: i32, how: ChildExit, now: Instant) {
        let Some(index) = self.workers.iter().position(|w| w.pid == pid) else {
            return;
        };
        let worker = self.workers.remove(index);
        let id = worker.generation;
        let (state, lib) = match self.generations.iter().find(|g| g.id == id) {
            Some(g) => (Some(g.state), g.artifact.source.display().to_string()),
            None => (None, self.source.display().to_string()),
        };
        match state {
            // Killed for its silence, which was logged (and, booting, failed the swap).
            _ if worker.silenced => {
                self.log(
                    log::Level::Debug,
                    format!("worker {pid}, killed for its silence, {how}"),
                );
                if state == Some(State::Live) && !worker.ready {
                    self.back_off(now);
                }
            }
            // A canary's worker, serving: its exit fails the canary, unless a stop ended it.
            Some(State::Booting)
                if self
                    .trial
                    .as_ref()
                    .is_some_and(|t| t.id == id && t.ends.is_some()) =>
            {
                if self.is_stopping() {
                    self.log(
                        log::Level::Debug,
                        format!("canary worker {pid} (generation {id}) {how} during the stop"),
                    );
                } else {
                    let message = format!("canary failed: worker {pid} {how} while serving");
                    self.swap_failed(id, &message);
                }
            }
            Some(State::Booting) => {
                let message = format!(
                    "worker {pid} {how} while loading {lib}:{} (a crash in the library's initialisers or init)",
                    self.symbol
                );
                self.swap_failed(id, &message);
            }
            Some(State::Live) if !self.is_stopping() => {
                // A worker exits 0 only after a graceful drain, which someone asked for; one
                // TERM reaches before it installed its handler dies of it. Either way planned
                // (a recycle, TTOU, or `kill -TERM WORKER`, gunicorn's way to restart one), not
                // a fault to page about.
                let planned = matches!(
                    how,
                    ChildExit::Exited(0) | ChildExit::Signaled(libc::SIGTERM)
                );
                let (level, text) = if worker.retiring && how == ChildExit::Exited(0) {
                    (log::Level::Info, format!("worker {pid} recycled"))
                } else if worker.retiring && planned {
                    (log::Level::Info, format!("worker {pid} retired: {how}"))
                } else if planned {
                    (
                        log::Level::Info,
                        format!("worker {pid} (generation {id}) {how}: stopped from outside the master (e.g. kill -TERM); replacing it"),
                    )
                } else if how == ChildExit::Exited(i32::from(HARAKIRI)) {
                    (
                        log::Level::Error,
                        format!("worker {pid} (generation {id}, {lib}) was stuck in a request past --timeout and exited; replacing it"),
                    )
                } else {
                    (
                        log::Level::Error,
                        format!("worker {pid} (generation {id}, {lib}) {how}; replacing it"),
                    )
                };
                self.log(level, text);
                if !worker.ready {
                    self.back_off(now);
                }
            }
            Some(State::Draining) => self.log(
                log::Level::Info,
                format!("worker {pid} of generation {id} drained and {how}"),
            ),
            _ => self.log(log::Level::Debug, format!("worker {pid} {how}")),
        }
        self.forget_finished_generations();
    }

    /// A replacement died before it was ready (or could not be started): the next one waits,
    /// twice as long each time, and a run of them is a crash loop (`crash_loop.rs`).
    pub(super) fn back_off(&mut self, now: Instant) {
        let retry_at = now + self.backoff;
        self.next_spawn = Some(retry_at);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.start_failed(retry_at, now);
    }

    pub(super) fn forget_finished_generations(&mut self) {
        let (workers, spawning) = (&self.workers, &self.spawning);
        self.generations.retain(|g| {
            matches!(g.state, State::Live | State::Booting)
                || workers.iter().any(|w| w.generation == g.id)
                || spawning.contains(&g.id)
        });
    }

    /// Keep the live generation at `want` serving workers (replacements, TTIN/TTOU).
    pub(super) fn reconcile(&mut self, now: Instant) {
        let Some(live) = self.generations.iter().find(|g| g.state == State::Live) else {
            return;
        };
        let (id, library) = (live.id, live.artifact.clone());
        let serving: Vec<i32> = self
            .workers
            .iter()
            .filter(|w| w.generation == id && !w.retiring)
            .map(|w| w.pid)
            .collect();
        let starting = self.spawning.iter().filter(|&&g| g == id).count();
        if serving.len() > self.want {
            for &pid in &serving[self.want..] {
                self.signal(pid, Signal::Term);
                if let Some(worker) = self.workers.iter_mut().find(|w| w.pid == pid) {
                    worker.retiring = true;
                }
            }
        } else if serving.len() + starting < self.want
            && self.next_spawn.filter(|&at| now < at).is_none()
        {
            self.repin_if_nothing_serves(id, &library);
            self.spawn(id, &library);
        }
    }
}
