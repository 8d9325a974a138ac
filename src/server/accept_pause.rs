//! Accepting while the process cannot take another connection (out of descriptors: EMFILE,
//! ENFILE; out of kernel memory: ENOBUFS, ENOMEM).
//!
//! The listener is edge-triggered: a failed accept leaves the connection in the listen queue,
//! and nothing reports it again until yet another client connects. So a failure starts an
//! episode: accepting is retried every [`RETRY_EVERY`] (nginx waits 500 ms too) — the
//! coordinator re-arms the listener, which reports the queue again if it is not empty — and
//! connections that arrive meanwhile are left queued rather than tried one failing accept at a
//! time. The episode is logged once when it starts (a warning) and once when an accept succeeds
//! again, with how many accepts failed, instead of one warning per attempt.
//!
//! Serving threads accept concurrently, so a success is reported with the ticket its attempt
//! was given: one that predates the episode does not end it.
//!
//! Outside an episode the accept path pays one relaxed atomic load.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long accepting rests after it failed for lack of resources.
pub(crate) const RETRY_EVERY: Duration = Duration::from_millis(500);

/// What a failed `accept` means for the connections still queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AcceptError {
    /// That one connection failed (reset before it was accepted, a network error the man page
    /// says to treat like EAGAIN): the next one may well succeed, so keep accepting.
    ThisConnection,
    /// The process cannot take any connection now (descriptors, memory): stop and retry later.
    NoResources,
}

impl AcceptError {
    pub(crate) fn of(error: &io::Error) -> AcceptError {
        match error.raw_os_error() {
            Some(
                libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH,
            ) => AcceptError::ThisConnection,
            // EMFILE, ENFILE, ENOBUFS, ENOMEM — and anything unexpected, which must not spin.
            _ => AcceptError::NoResources,
        }
    }
}

/// The state of accepting for one process.
#[derive(Default)]
pub(crate) struct AcceptPause {
    /// Read on every accept, so kept apart from the episode: bit 0 says an episode is on, the
    /// rest counts the episodes begun, so that a success can tell whether it predates the
    /// current one.
    state: AtomicU64,
    episode: Mutex<Option<Episode>>,
}

/// What `may_accept` saw, handed back to `accepted`. Serving threads accept concurrently: one
/// can take the last descriptor and report its success after another thread's accept has failed
/// and begun an episode. That success says nothing about the episode and must not end it.
#[derive(Clone, Copy)]
pub(crate) struct AcceptTicket(u64);

const ON: u64 = 1;

struct Episode {
    since: Instant,
    failed: u64,
    /// No accept is tried before this.
    retry_at: Instant,
    /// The coordinator re-armed the listener for this retry already.
    rearmed: bool,
}

impl AcceptPause {
    fn lock(&self) -> MutexGuard<'_, Option<Episode>> {
        self.episode.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a serving thread may try to accept at `now` (not while an episode rests), and
    /// if so the ticket to report a success with.
    pub(crate) fn may_accept(&self, now: Instant) -> Option<AcceptTicket> {
        let state = self.state.load(Ordering::Relaxed);
        if state & ON == 0 {
            return Some(AcceptTicket(state));
        }
        match self.lock().as_ref() {
            Some(episode) if now < episode.retry_at => None,
            _ => Some(AcceptTicket(state)),
        }
    }

    /// An accept failed for lack of resources: start an episode (logged) or extend it.
    pub(crate) fn failed(&self, error: &io::Error, now: Instant) {
        let mut episode = self.lock();
        match episode.as_mut() {
            Some(episode) => {
                episode.failed += 1;
                episode.retry_at = now + RETRY_EVERY;
                episode.rearmed = false;
            }
            None => {
                log::warn!(
                    "cannot accept connections: {error}; they wait in the listen queue and \
                     accepting is retried every {} ms (raise the open-files limit, ulimit -n, \
                     if this repeats)",
                    RETRY_EVERY.as_millis()
                );
                *episode = Some(Episode {
                    since: now,
                    failed: 1,
                    retry_at: now + RETRY_EVERY,
                    rearmed: false,
                });
                // Episodes are counted in the bits above ON: the next count, with ON set.
                let begun = (self.state.load(Ordering::Relaxed) | ON) + 1;
                self.state.store(begun | ON, Ordering::Relaxed);
            }
        }
    }

    /// A connection was accepted by an attempt made with `ticket`: an episode in progress that
    /// had begun before that attempt is over (logged).
    pub(crate) fn accepted(&self, ticket: AcceptTicket, now: Instant) {
        if self.state.load(Ordering::Relaxed) & ON == 0 {
            return;
        }
        let mut episode = self.lock();
        let state = self.state.load(Ordering::Relaxed);
        // The ticket of an attempt made during this episode equals `state`; an earlier one is
        // smaller (a count of episodes begun before, with or without ON).
        if state & ON == 0 || ticket.0 < state {
            return;
        }
        let Some(episode) = episode.take() else {
            return;
        };
        self.state.store(state & !ON, Ordering::Relaxed);
        log::info!(
            "accepting connections again after {} failed accept(s) over {:.1}s",
            episode.failed,
            now.saturating_duration_since(episode.since).as_secs_f64()
        );
    }

    /// For the coordinator: true once per rest, when it is over — the listener must then be
    /// re-armed so that connections already queued are reported again.
    pub(crate) fn retry_due(&self, now: Instant) -> bool {
        if self.state.load(Ordering::Relaxed) & ON == 0 {
            return false;
        }
        match self.lock().as_mut() {
            Some(episode) if now >= episode.retry_at && !episode.rearmed => {
                episode.rearmed = true;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_rests_retries_once_per_rest_and_ends_on_success() {
        let pause = AcceptPause::default();
        let start = Instant::now();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        assert!(pause.may_accept(start).is_some());
        assert!(!pause.retry_due(start));
        pause.failed(&emfile, start);
        assert!(pause.may_accept(start + RETRY_EVERY / 2).is_none());
        assert!(!pause.retry_due(start + RETRY_EVERY / 2));
        let due = start + RETRY_EVERY;
        assert!(pause.retry_due(due));
        assert!(!pause.retry_due(due), "re-armed once per rest");
        assert!(pause.may_accept(due).is_some());
        pause.failed(&emfile, due);
        assert!(pause.may_accept(due).is_none());
        assert!(pause.retry_due(due + RETRY_EVERY));
        let retry = pause.may_accept(due + RETRY_EVERY).unwrap();
        pause.accepted(retry, due + RETRY_EVERY);
        assert!(pause.may_accept(due + RETRY_EVERY).is_some());
        assert!(!pause.retry_due(due + RETRY_EVERY * 4));
    }

    /// Two threads: one accepts the last descriptor's connection, another fails right after
    /// and starts an episode; the first one's success, reported late, predates the episode and
    /// must not end it (CI once logged two warnings for one episode this way).
    #[test]
    fn a_success_reported_after_a_later_failure_does_not_end_the_episode() {
        let pause = AcceptPause::default();
        let start = Instant::now();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let before = pause.may_accept(start).unwrap();
        pause.failed(&emfile, start);
        pause.accepted(before, start);
        assert!(
            pause.may_accept(start).is_none(),
            "the episode ended on an earlier success"
        );
        let later = start + RETRY_EVERY;
        let retry = pause.may_accept(later).unwrap();
        pause.accepted(before, later);
        assert!(
            pause.retry_due(later),
            "the episode ended on an earlier success"
        );
        pause.accepted(retry, later);
        assert!(!pause.retry_due(later + RETRY_EVERY));
        assert!(pause.may_accept(later).is_some());
    }

    /// Over several episodes: a ticket of an earlier episode (or of the calm between two) never
    /// ends a later one, a success reported after another thread ended the episode changes
    /// nothing, and each episode ends at the first success of an attempt made during it.
    #[test]
    fn only_a_success_of_an_attempt_made_during_an_episode_ends_it() {
        let pause = AcceptPause::default();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let mut now = Instant::now();
        let mut stale = vec![pause.may_accept(now).unwrap()];
        for _ in 0..3 {
            pause.failed(&emfile, now);
            for &ticket in &stale {
                pause.accepted(ticket, now);
                assert!(pause.may_accept(now).is_none(), "ended by an older ticket");
            }
            now += RETRY_EVERY;
            assert!(pause.retry_due(now));
            let first = pause.may_accept(now).unwrap();
            let second = pause.may_accept(now).unwrap();
            for &ticket in &stale {
                pause.accepted(ticket, now);
            }
            assert!(!pause.retry_due(now), "re-armed once per rest");
            assert!(
                pause.may_accept(now).is_some(),
                "the rest is over: accepts may be tried"
            );
            pause.failed(&emfile, now);
            assert!(
                pause.may_accept(now).is_none(),
                "the same episode rests again"
            );
            now += RETRY_EVERY;
            pause.accepted(first, now);
            assert!(pause.may_accept(now).is_some(), "ended by its own attempt");
            assert!(!pause.retry_due(now + RETRY_EVERY), "over");
            // Reported after the end: nothing to end, and the calm goes on.
            pause.accepted(second, now);
            assert!(pause.may_accept(now).is_some());
            stale.extend([first, second, pause.may_accept(now).unwrap()]);
        }
    }

    #[test]
    fn errors_of_one_connection_do_not_stop_accepting() {
        let of = |errno| AcceptError::of(&io::Error::from_raw_os_error(errno));
        assert_eq!(of(libc::ECONNABORTED), AcceptError::ThisConnection);
        assert_eq!(of(libc::EMFILE), AcceptError::NoResources);
        assert_eq!(of(libc::ENFILE), AcceptError::NoResources);
        assert_eq!(of(libc::ENOBUFS), AcceptError::NoResources);
    }
}
