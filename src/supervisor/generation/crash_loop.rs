//! A crash loop: the live generation's replacement workers keep dying before they are ready (a
//! broken edit imported by each replacement, a missing file, the source changed since the
//! generation started). Each death already backs off (`replace.rs`); after [`CRASH_LOOP_AFTER`]
//! in a row the loop is said once, at error level, with the wait before the next try and the
//! last worker's own reason, `FILE.status` says `crash-loop G HASH WHY`, and `--stats` shows it
//! until a replacement gets ready again (then `ready G HASH` again and one line saying so).

use std::time::{Duration, Instant};

use super::{Action, CrashLoopView, Generations, State};

/// This many replacements in a row that died before they were ready make a crash loop.
pub(crate) const CRASH_LOOP_AFTER: u32 = 3;

/// The live generation's replacements that died before they were ready, in a row.
#[derive(Debug, Default)]
pub(super) struct StartFailures {
    count: u32,
    /// The last one's own reason (its `error` message), if it gave one.
    last: Option<String>,
    /// When the next replacement may start.
    retry_at: Option<Instant>,
    /// The generation's source pin was emptied during this run (said once).
    repinned: bool,
}

impl Generations {
    /// A replacement's own reason for failing to start, kept for the crash-loop line.
    pub(super) fn start_failure_reason(&mut self, message: &str) {
        self.start_failures.last = Some(message.to_owned());
    }

    /// One more replacement died before it was ready; `retry_at` is when the next may start.
    pub(super) fn start_failed(&mut self, retry_at: Instant, now: Instant) {
        let failures = &mut self.start_failures;
        failures.count += 1;
        failures.retry_at = Some(retry_at);
        if failures.count != CRASH_LOOP_AFTER {
            return;
        }
        let Some((id, hash)) = self.live_generation() else {
            return;
        };
        let last = self.start_failures.last.clone();
        let why = last.as_deref().unwrap_or("each exited before it was ready");
        self.log(
            log::Level::Error,
            format!(
                "crash loop: {CRASH_LOOP_AFTER} replacement workers of generation {id} in a row \
                 died before they were ready; retrying with back-off (next in {:?}): {why}",
                retry_at.saturating_duration_since(now)
            ),
        );
        self.emit(Action::Status(format!(
            "crash-loop {id} {hash} {}",
            one_line(why)
        )));
    }

    /// A replacement got ready (or a new generation went live): a crash loop is over.
    pub(super) fn start_succeeded(&mut self) {
        let failures = std::mem::take(&mut self.start_failures);
        if failures.count < CRASH_LOOP_AFTER {
            return;
        }
        let Some((id, hash)) = self.live_generation() else {
            return;
        };
        self.log(
            log::Level::Info,
            format!(
                "crash loop over: a replacement worker of generation {id} is ready after {} that \
                 were not",
                failures.count
            ),
        );
        self.emit(Action::Status(format!("ready {id} {hash}")));
    }

    /// Before a replacement of the live generation `id` starts: if it has no worker left
    /// serving and replacements are failing (say, refused because the source changed), empty its
    /// source pin so that the next one loads the code on disk rather than leave nothing serving.
    pub(super) fn repin_if_nothing_serves(&mut self, id: u64, library: &super::Artifact) {
        let serving = self
            .workers
            .iter()
            .any(|w| w.generation == id && w.ready && !w.retiring);
        if serving || self.start_failures.count == 0 {
            return;
        }
        if !self.start_failures.repinned {
            self.start_failures.repinned = true;
            self.log(
                log::Level::Warn,
                format!(
                    "generation {id} has no worker left serving and its replacements fail to \
                     start: the next one loads the code on disk as it is now (HUP deploys an \
                     edit to every worker at once)"
                ),
            );
        }
        self.emit(Action::ResetSourcePin(library.clone()));
    }

    /// The crash loop under way, if any (for `--stats`).
    pub(crate) fn crash_loop(&self, now: Instant) -> Option<CrashLoopView> {
        let failures = &self.start_failures;
        if failures.count < CRASH_LOOP_AFTER {
            return None;
        }
        Some(CrashLoopView {
            generation: self.live_generation()?.0,
            failures: failures.count,
            last_failure: failures.last.clone(),
            retry_in: failures
                .retry_at
                .map_or(Duration::ZERO, |at| at.saturating_duration_since(now)),
        })
    }

    fn live_generation(&self) -> Option<(u64, String)> {
        self.generations
            .iter()
            .find(|g| g.state == State::Live)
            .map(|g| (g.id, g.artifact.hash.clone()))
    }
}

/// The status file is one line.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}
