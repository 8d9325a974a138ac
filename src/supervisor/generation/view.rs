//! What the state machine knows, read-only, for `--stats`: which generation serves which library,
//! its workers and their state, how swaps went, and what a worker's exit means.

use std::time::Instant;

use super::{
    CrashLoopView, GenerationView, Generations, State, SwapCounts, WorkerFate, WorkerView,
};
use crate::stats::facts::Machine;

fn state_name(state: State) -> &'static str {
    match state {
        State::Booting => "booting",
        State::Live => "live",
        State::Draining => "draining",
        State::Failed => "failed",
    }
}

impl Generations {
    /// The generations the master still has (live, booting, draining, failed with workers).
    pub(crate) fn generation_views(&self) -> Vec<GenerationView> {
        self.generations
            .iter()
            .map(|g| GenerationView {
                id: g.id,
                state: match &self.trial {
                    Some(t) if t.id == g.id && t.ends.is_some() && !t.passed => "canary",
                    _ => state_name(g.state),
                },
                source: g.artifact.source.clone(),
                hash: g.artifact.hash.clone(),
                app: g.app.clone(),
            })
            .collect()
    }

    pub(crate) fn worker_views(&self) -> Vec<WorkerView> {
        self.workers
            .iter()
            .map(|w| WorkerView {
                pid: w.pid,
                generation: w.generation,
                ready: w.ready,
            })
            .collect()
    }

    pub(crate) fn swap_counts(&self) -> &SwapCounts {
        &self.swaps
    }

    /// What the master knows of worker `pid`, while it still knows it (before its exit event).
    pub(crate) fn worker_fate(&self, pid: i32) -> Option<WorkerFate> {
        let worker = self.workers.iter().find(|w| w.pid == pid)?;
        Some(WorkerFate {
            silenced: worker.silenced,
            ready: worker.ready,
            stopping: self.is_stopping(),
        })
    }
}

impl Machine for Generations {
    fn generation_views(&self) -> Vec<GenerationView> {
        Generations::generation_views(self)
    }

    fn worker_views(&self) -> Vec<WorkerView> {
        Generations::worker_views(self)
    }

    fn swap_counts(&self) -> &SwapCounts {
        Generations::swap_counts(self)
    }

    fn crash_loop(&self, now: Instant) -> Option<CrashLoopView> {
        Generations::crash_loop(self, now)
    }
}
