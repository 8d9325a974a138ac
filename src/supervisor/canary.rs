//! Canary swaps (issue 23, item 2): with `--canary N`, a hot swap first starts N workers of the
//! new generation beside the old generation's workers, which keep serving; `--canary P%` starts
//! P % of `--workers` (rounded up, at least one), decided when the swap starts. Both
//! generations accept from the same listeners, each worker as fast as it can, so with w old
//! workers the canary takes about N/(w+N) of the new connections (the verdict line says the
//! share it really had). After
//! `--canary-window` the master compares the two generations over that window, from the latency
//! histograms of `--stats` (`crate::stats`): the canary's share of 5xx answers, and its p99
//! against the old generation's. Within the thresholds the swap goes on as a normal one (the
//! rest of the new workers boot, then the old generation drains); beyond them the canary's
//! workers drain and the swap fails with one line naming the threshold and both generations'
//! figures. A canary worker that dies fails the swap at once (the state machine's boot rules).
//!
//! The state machine (`generation.rs`) decides when the window starts and ends; this file holds
//! the options and the verdict.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;

use crate::stats::Latency;

/// The master's `--canary*` options.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct CanaryArgs {
    /// Make every hot swap a canary: start N workers of the new generation (or P% of
    /// --workers, rounded up) beside the old ones, compare the two for --canary-window, then
    /// complete the swap or roll it back. Needs --stats.
    #[arg(
        long,
        value_name = "N|P%",
        env = "WEBSERVER_CANARY",
        requires = "stats",
        help_heading = "Metrics"
    )]
    pub(crate) canary: Option<CanaryShare>,

    /// How long a canary serves before it is judged, in seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60,
        env = "WEBSERVER_CANARY_WINDOW",
        value_parser = clap::value_parser!(u64).range(1..),
        help_heading = "Metrics"
    )]
    pub(crate) canary_window: u64,

    /// Roll a canary back if more than PERCENT of its answers in the window were 5xx.
    #[arg(
        long,
        value_name = "PERCENT",
        default_value_t = 1.0,
        env = "WEBSERVER_CANARY_MAX_5XX",
        help_heading = "Metrics"
    )]
    pub(crate) canary_max_5xx: f64,

    /// Roll a canary back if its p99 in the window exceeds the old generation's times RATIO.
    #[arg(
        long,
        value_name = "RATIO",
        default_value_t = 2.0,
        env = "WEBSERVER_CANARY_MAX_P99_RATIO",
        help_heading = "Metrics"
    )]
    pub(crate) canary_max_p99_ratio: f64,
}

/// How many workers a canary gets: `N`, or `P%` of the generation's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CanaryShare {
    Workers(usize),
    Percent(u8),
}

impl FromStr for CanaryShare {
    type Err = String;

    fn from_str(text: &str) -> Result<CanaryShare, String> {
        let wrong = || {
            format!("'{text}' is not a canary size: write a number of workers (1 to 64) or a share of --workers (1% to 100%)")
        };
        match text.strip_suffix('%') {
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p @ 1..=100) => Ok(CanaryShare::Percent(p)),
                _ => Err(wrong()),
            },
            None => match text.parse::<usize>() {
                Ok(n @ 1..=64) => Ok(CanaryShare::Workers(n)),
                _ => Err(wrong()),
            },
        }
    }
}

impl fmt::Display for CanaryShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CanaryShare::Workers(n) => write!(f, "{n}"),
            CanaryShare::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// What the state machine needs of the options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CanaryPlan {
    pub(crate) share: CanaryShare,
    pub(crate) window: Duration,
}

impl CanaryPlan {
    /// The canary's workers when the generation has `want`: P % rounded up, at least one.
    pub(crate) fn workers(&self, want: usize) -> usize {
        match self.share {
            CanaryShare::Workers(n) => n,
            CanaryShare::Percent(p) => (want * usize::from(p)).div_ceil(100).max(1),
        }
    }
}

impl CanaryArgs {
    pub(crate) fn plan(&self) -> Option<CanaryPlan> {
        self.canary.map(|share| CanaryPlan {
            share,
            window: Duration::from_secs(self.canary_window),
        })
    }

    /// Judge canary `new` against `old` over one window (each generation's durations at its
    /// end minus those at its start): `Ok` with the figures, or `Err` naming the threshold that
    /// failed and both generations' figures.
    pub(crate) fn judge(
        &self,
        (new, new_window): (u64, &Latency),
        (old, old_window): (u64, &Latency),
    ) -> Result<String, String> {
        let figures = |id: u64, w: &Latency| {
            let all = w.all();
            let p99 = all
                .quantile(0.99)
                .map_or_else(|| "-".to_owned(), |p| format!("{p:.4} s"));
            format!(
                "generation {id}: {} answers, {} 5xx ({:.1} %), p99 {p99}",
                all.count(),
                w.classes[4].count(),
                share_5xx(w)
            )
        };
        let (n_new, n_old) = (new_window.all().count(), old_window.all().count());
        let share = match n_new + n_old {
            0 => "-".to_owned(),
            all => format!("{:.0} %", n_new as f64 * 100.0 / all as f64),
        };
        let both = format!(
            "{}; {}; the canary's share {share}",
            figures(new, new_window),
            figures(old, old_window)
        );
        if share_5xx(new_window) > self.canary_max_5xx {
            return Err(format!(
                "5xx {:.1} % over --canary-max-5xx {} % ({both})",
                share_5xx(new_window),
                self.canary_max_5xx
            ));
        }
        if let (Some(p_new), Some(p_old)) = (
            new_window.all().quantile(0.99),
            old_window.all().quantile(0.99),
        ) {
            if p_new > p_old * self.canary_max_p99_ratio {
                return Err(format!(
                    "p99 {:.1}x the old generation's, over --canary-max-p99-ratio {} ({both})",
                    p_new / p_old,
                    self.canary_max_p99_ratio
                ));
            }
        }
        Ok(both)
    }
}

/// The share of 5xx answers in percent (0 without answers).
fn share_5xx(w: &Latency) -> f64 {
    let all = w.all().count();
    if all == 0 {
        return 0.0;
    }
    w.classes[4].count() as f64 * 100.0 / all as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> CanaryArgs {
        CanaryArgs {
            canary: Some(CanaryShare::Workers(1)),
            canary_window: 60,
            canary_max_5xx: 1.0,
            canary_max_p99_ratio: 2.0,
        }
    }

    /// `ok` 2xx answers in bucket `bucket`, `bad` 5xx ones in bucket 0.
    fn window(ok: u64, bucket: usize, bad: u64) -> Latency {
        let mut w = Latency::default();
        w.classes[1].buckets[bucket] = ok;
        w.classes[4].buckets[0] = bad;
        w
    }

    #[test]
    fn a_canary_fails_on_its_5xx_share_or_its_p99_and_passes_within_both() {
        let old = window(1000, 2, 0);
        let verdict = args().judge((2, &window(90, 2, 10)), (1, &old));
        let why = verdict.unwrap_err();
        assert!(
            why.starts_with("5xx 10.0 % over --canary-max-5xx 1 %"),
            "{why}"
        );
        assert!(why.contains("generation 2: 100 answers, 10 5xx"), "{why}");
        assert!(why.contains("generation 1: 1000 answers, 0 5xx"), "{why}");
        assert!(why.ends_with("the canary's share 9 %)"), "{why}");
        // 50-100 µs against 25-50 ms.
        let why = args()
            .judge((2, &window(100, 10, 0)), (1, &old))
            .unwrap_err();
        assert!(why.contains("over --canary-max-p99-ratio 2"), "{why}");
        assert!(args().judge((2, &window(100, 2, 0)), (1, &old)).is_ok());
        // Nothing served by either: nothing to hold against the canary.
        assert!(args()
            .judge((2, &Latency::default()), (1, &Latency::default()))
            .is_ok());
    }

    #[test]
    fn a_canary_is_a_number_of_workers_or_a_share_of_them_rounded_up() {
        let plan = |text: &str| CanaryPlan {
            share: text.parse().unwrap(),
            window: Duration::from_secs(1),
        };
        assert_eq!(plan("3").workers(10), 3);
        assert_eq!(plan("10%").workers(10), 1);
        assert_eq!(plan("10%").workers(2), 1);
        assert_eq!(plan("25%").workers(10), 3);
        assert_eq!(plan("100%").workers(4), 4);
        assert_eq!(plan("10%").share.to_string(), "10%");
        for wrong in ["0", "65", "0%", "101%", "x%", "-1", ""] {
            let why = wrong.parse::<CanaryShare>().unwrap_err();
            assert!(why.contains("1% to 100%"), "{why}");
        }
    }
}
