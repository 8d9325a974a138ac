//! When the coordinator gives the allocator's free memory back to the kernel
//! (`crate::sys::heap::release_free_memory`).
//!
//! Freed connection state, read buffers grown for a large head and response bytes that waited
//! for a slow client all go back to malloc, which keeps them resident (see `sys::heap`): after
//! 10,000 connections came and went, a worker held 3.7 MiB more than before them until it
//! exited. The coordinator, which serves nothing, releases it at two moments, each looked at
//! once per sweep: when many connections closed since the most the worker held and their count
//! has settled (a burst ended, even while other clients are served), and when nothing changed
//! for a second after something did (no request served, no connection opened or closed: an
//! idle period after load). Neither happens under steady load, and the release (a walk of
//! malloc's free lists, some `madvise` calls; it locks each arena briefly) runs off the serving
//! threads.

use std::time::{Duration, Instant};

/// Connections closed since the most that were open, at which the memory is released once the
/// count has settled.
const CLOSED_SINCE_PEAK: usize = 256;

/// How long nothing may change (no request served, no connection opened or closed) before the
/// memory the last activity used is released.
const QUIET_FOR: Duration = Duration::from_secs(1);

/// What the coordinator has seen since it last released memory.
#[derive(Debug)]
pub(crate) struct HeapTrim {
    /// The most connections open at once since the last release.
    peak_open: usize,
    /// Connections open and requests served, as of the last look.
    open: usize,
    served: u64,
    /// When either last changed, if one did since the last release.
    changed_at: Option<Instant>,
}

impl HeapTrim {
    pub(crate) fn new() -> HeapTrim {
        HeapTrim {
            peak_open: 0,
            open: 0,
            served: 0,
            changed_at: None,
        }
    }

    /// One look per sweep, with the connections open now and the requests served so far: `true`
    /// when the memory should be released now (and it is then taken as released).
    pub(crate) fn due(&mut self, now: Instant, open: usize, served: u64) -> bool {
        self.peak_open = self.peak_open.max(open);
        let settled = open == self.open;
        if !settled || served != self.served {
            self.open = open;
            self.served = served;
            self.changed_at = Some(now);
        }
        // Many connections closed, and no more since the last look (even while others are
        // still being served): the burst is over.
        let burst_ended = settled && self.peak_open - open >= CLOSED_SINCE_PEAK;
        let went_quiet = self
            .changed_at
            .is_some_and(|at| now.duration_since(at) >= QUIET_FOR);
        if burst_ended || went_quiet {
            self.peak_open = open;
            self.changed_at = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWEEP: Duration = Duration::from_millis(250);

    #[test]
    fn steady_load_releases_nothing() {
        let mut trim = HeapTrim::new();
        let start = Instant::now();
        for tick in 0..100u64 {
            // About 50 connections, always some requests served.
            let open = 45 + (tick % 10) as usize;
            assert!(
                !trim.due(start + SWEEP * tick as u32, open, tick * 1000),
                "released at tick {tick}"
            );
        }
    }

    #[test]
    fn a_burst_that_ended_releases_once_its_connections_are_gone() {
        let mut trim = HeapTrim::new();
        let t = Instant::now();
        assert!(!trim.due(t, 10_000, 1));
        // Closing, with requests still served: not yet.
        assert!(!trim.due(t + SWEEP, 6_000, 2));
        assert!(!trim.due(t + SWEEP * 2, 50, 3));
        // Settled.
        assert!(trim.due(t + SWEEP * 3, 50, 4));
        assert!(!trim.due(t + SWEEP * 4, 50, 5));
    }

    #[test]
    fn a_quiet_period_after_activity_releases_once() {
        let mut trim = HeapTrim::new();
        let t = Instant::now();
        assert!(!trim.due(t, 0, 0));
        assert!(
            !trim.due(t + QUIET_FOR * 3, 0, 0),
            "nothing happened: nothing to release"
        );
        assert!(!trim.due(t + QUIET_FOR * 3, 5, 7));
        assert!(!trim.due(t + QUIET_FOR * 4 - Duration::from_millis(1), 5, 7));
        assert!(trim.due(t + QUIET_FOR * 4, 5, 7));
        assert!(!trim.due(t + QUIET_FOR * 10, 5, 7), "released already");
    }
}
