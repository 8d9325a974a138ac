//! What the state machine knows, read-only, for `--stats`: which generation serves which library,
//! its workers and their state, how swaps went, and what a worker's exit means.

use std::path::PathBuf;

use super::{Generations, State};

/// Swaps since the first generation served.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SwapCounts {
    /// Announced ready (the old generation stopped accepting).
    pub(crate) ok: u64,
    /// Refused: the old generation kept serving.
    pub(crate) failed: u64,
    /// Why the last refused swap was refused.
    pub(crate) last_failure: Option<String>,
}

/// A generation as `--stats` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GenerationView {
    pub(crate) id: u64,
    /// `booting`, `live`, `draining` or `failed`.
    pub(crate) state: &'static str,
    /// The user's file.
    pub(crate) source: PathBuf,
    pub(crate) hash: String,
    /// `NAME VERSION` from its first worker's `ready` (empty before).
    pub(crate) app: String,
}

/// A worker as `--stats` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WorkerView {
    pub(crate) pid: i32,
    pub(crate) generation: u64,
    pub(crate) ready: bool,
}

/// How a worker that is about to be reaped ended, as far as the master is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WorkerFate {
    /// The master killed it for its silence (`--timeout`).
    pub(crate) silenced: bool,
    /// It had loaded the app and said `ready`.
    pub(crate) ready: bool,
    /// A stop is under way: the master may have killed it for being late.
    pub(crate) stopping: bool,
}

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
