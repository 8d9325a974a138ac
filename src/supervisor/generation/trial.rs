//! A canary swap's window (`--canary`, `crate::supervisor::canary`): the new generation's few
//! workers accept beside the old generation once they are all ready, the master is asked for a
//! verdict once the window is over, and the verdict either boots the rest of the generation (a
//! normal swap from there) or fails the swap. The new generation stays `Booting` meanwhile, so a
//! canary worker's death fails the swap and another swap waits, as during any boot.

use std::time::Instant;

use super::{Action, Generations};

/// A canary swap under way (`canary.rs`): generation `id` tried beside `old`.
pub(super) struct Trial {
    pub(super) id: u64,
    pub(super) old: u64,
    /// How many workers the canary has (`--canary`, decided when the swap started).
    pub(super) workers: usize,
    /// The window's end, once the canary's workers accept.
    pub(super) ends: Option<Instant>,
    /// `JudgeCanary` is out and its verdict not in yet.
    pub(super) judging: bool,
    /// Judged good: the rest of the generation boots, as in a normal swap.
    pub(super) passed: bool,
}

impl Generations {
    /// A canary's window is over: ask the master for the verdict (once).
    pub(super) fn judge_canary_if_due(&mut self, now: Instant) {
        let Some(trial) = &mut self.trial else {
            return;
        };
        if trial.judging || trial.passed || trial.ends.is_none_or(|ends| now < ends) {
            return;
        }
        trial.judging = true;
        let (generation, old) = (trial.id, trial.old);
        self.emit(Action::JudgeCanary { generation, old });
    }

    pub(super) fn on_verdict(&mut self, id: u64, verdict: Result<String, String>, now: Instant) {
        let Some(trial) = self.trial.as_mut().filter(|t| t.id == id && t.judging) else {
            return;
        };
        match verdict {
            Ok(figures) => {
                trial.passed = true;
                trial.judging = false;
                self.log(
                    log::Level::Info,
                    format!("generation {id}: canary passed ({figures}); booting the rest"),
                );
                let Some(library) = self
                    .generations
                    .iter()
                    .find(|g| g.id == id)
                    .map(|g| g.artifact.clone())
                else {
                    return;
                };
                let have = self.workers.iter().filter(|w| w.generation == id).count()
                    + self.spawning.iter().filter(|&&g| g == id).count();
                for _ in have..self.want {
                    self.spawn(id, &library);
                }
                self.promote_if_ready(id, now);
            }
            Err(why) => {
                self.trial = None;
                self.swap_failed(id, &format!("canary failed: {why}"));
            }
        }
    }

    /// Every canary worker is ready: let them accept beside the old generation and start the
    /// window.
    pub(super) fn start_canary_if_ready(&mut self, id: u64, now: Instant) {
        let (Some(plan), Some(trial)) = (self.canary, &self.trial) else {
            return;
        };
        if trial.ends.is_some() {
            return;
        }
        let (old, workers) = (trial.old, trial.workers);
        if !self.go_if_ready(id, workers) {
            return;
        }
        if let Some(trial) = &mut self.trial {
            trial.ends = Some(now + plan.window);
        }
        let hash = self
            .generations
            .iter()
            .find(|g| g.id == id)
            .map(|g| g.artifact.hash.clone())
            .unwrap_or_default();
        self.log(
            log::Level::Info,
            format!(
                "generation {id}: canary of {} worker(s) serving beside generation {old} for {:?}",
                workers, plan.window
            ),
        );
        // The window in seconds, so a deploy script waits that much longer for the outcome.
        self.emit(Action::Status(format!(
            "canary {id} {hash} {}",
            plan.window.as_secs()
        )));
        self.emit(Action::CanaryStarted { generation: id });
    }
}
