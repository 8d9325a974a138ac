//! The facts the supervisor hands the stats (`crate::supervisor::generation` makes them): its
//! generations, their workers, how swaps went, a crash loop, and how a worker ended. Defined here,
//! below the supervisor, so that the stats observe the supervisor without importing it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What the supervisor's state machine tells a scrape.
pub(crate) trait Machine {
    fn generation_views(&self) -> Vec<GenerationView>;
    fn worker_views(&self) -> Vec<WorkerView>;
    fn swap_counts(&self) -> &SwapCounts;
    fn crash_loop(&self, now: Instant) -> Option<CrashLoopView>;
}

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

/// A crash loop as `--stats` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CrashLoopView {
    pub(crate) generation: u64,
    /// Replacements that died before they were ready, in a row.
    pub(crate) failures: u32,
    pub(crate) last_failure: Option<String>,
    /// How long until the next replacement starts (zero: it may be starting now).
    pub(crate) retry_in: Duration,
}
