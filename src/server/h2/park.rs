//! Parked HTTP/2 streams (ABI 1.1): a stream whose app's body answered `WS_PENDING` holds no
//! serving thread. Its state waits in its [`StreamWake`], which the app's wakers and `h2` (for
//! the stream's next DATA frame, its end or its reset) both hold; a wake queues it for the
//! serving threads again, as a new stream is queued. A wake while the stream runs is remembered
//! and queues it as soon as it parks, so none is lost.
//!
//! The queue keeps every wake that may park, so the event loop's sweep can cancel a parked
//! stream past its `--timeout` (504) and the graceful timeout can cancel them all (503), as it
//! does parked HTTP/1.1 requests: the app's call ends through its `close`, on a serving thread.

use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use super::driver::InFlight;
use super::stream::ConnInfo;
use super::transport::StreamState;
use super::{Job, Queue};
use crate::app::call::{self, Cancel};
use crate::app::environ::Environ;

/// Everything a parked stream needs to run again.
pub(crate) struct ParkedStream {
    pub(super) call: call::Parked,
    /// The app keeps pointers into it until its body's close: it goes with the stream.
    pub(super) environ: Environ,
    pub(super) state: StreamState,
    pub(super) info: Arc<ConnInfo>,
    pub(super) started: Option<Instant>,
    /// Its `--timeout` (none without one).
    pub(super) deadline: Option<Instant>,
    /// Set when the sweep or the graceful timeout cancels it.
    pub(super) cancel: Option<Cancel>,
    pub(super) _in_flight: InFlight,
}

/// Where a stream that may park stands.
enum Where {
    /// On a serving thread; `woken`: a wake came meanwhile.
    Running {
        woken: bool,
    },
    Parked(Box<ParkedStream>),
    /// Over: wakes do nothing.
    Done,
}

/// One stream's wake: the app's `Wake` and `h2`'s task waker.
pub(crate) struct StreamWake {
    queue: Arc<Queue>,
    at: Mutex<Where>,
}

impl StreamWake {
    /// A wake for a stream that may park, known to `queue`'s sweep from now on.
    pub(super) fn new(queue: &Arc<Queue>) -> Arc<StreamWake> {
        let wake = Arc::new(StreamWake {
            queue: Arc::clone(queue),
            at: Mutex::new(Where::Running { woken: false }),
        });
        let mut parkable = super::lock(&queue.parkable);
        // The streams that ended are forgotten here, at most once per new one on average.
        if parkable.len() >= 64 && parkable.len().is_power_of_two() {
            parkable.retain(|wake| wake.strong_count() > 0);
        }
        parkable.push(Arc::downgrade(&wake));
        wake
    }

    /// Queues the stream with `cancel` if it is parked and due (its deadline at or before
    /// `by`; any, without `by`). True if it was.
    fn cancel_if_due(&self, cancel: Cancel, by: Option<Instant>) -> bool {
        let mut at = super::lock(&self.at);
        let due = matches!(&*at, Where::Parked(parked)
            if by.is_none_or(|by| parked.deadline.is_some_and(|deadline| deadline <= by)));
        if !due {
            return false;
        }
        let Where::Parked(mut parked) =
            std::mem::replace(&mut *at, Where::Running { woken: false })
        else {
            unreachable!("matched Parked above")
        };
        drop(at);
        parked.cancel = Some(cancel);
        self.queue.push(Job::Resume(parked));
        true
    }

    /// The stream ended: later wakes do nothing.
    pub(super) fn done(&self) {
        *super::lock(&self.at) = Where::Done;
    }

    fn wake_up(&self) {
        let mut at = super::lock(&self.at);
        match &mut *at {
            Where::Running { woken } => *woken = true,
            Where::Parked(_) => {
                let Where::Parked(parked) =
                    std::mem::replace(&mut *at, Where::Running { woken: false })
                else {
                    unreachable!("matched Parked above")
                };
                drop(at);
                self.queue.push(Job::Resume(parked));
            }
            Where::Done => {}
        }
    }
}

impl crate::app::waker::Wake for StreamWake {
    fn wake(&self) {
        self.wake_up();
    }
}

impl std::task::Wake for StreamWake {
    fn wake(self: Arc<Self>) {
        self.wake_up();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_up();
    }
}

/// The stream's body pended: it waits for a wake (or is queued at once if one came while it ran).
pub(super) fn park(mut parked: ParkedStream) {
    // Made now if nothing asked for it yet: the sweep finds the stream through it.
    let Some(wake) = parked.state.wake().cloned() else {
        log::error!("an HTTP/2 stream without a wake pended");
        return;
    };
    let mut at = super::lock(&wake.at);
    match &*at {
        Where::Running { woken: true } => {
            *at = Where::Running { woken: false };
            drop(at);
            wake.queue.push(Job::Resume(Box::new(parked)));
        }
        _ => *at = Where::Parked(Box::new(parked)),
    }
}

/// Cancels the parked streams of `queue` that are due (see `StreamWake::cancel_if_due`);
/// how many were.
pub(super) fn cancel_parked(queue: &Queue, cancel: Cancel, by: Option<Instant>) -> usize {
    let wakes: Vec<Arc<StreamWake>> = {
        let mut parkable = super::lock(&queue.parkable);
        parkable.retain(|wake| wake.strong_count() > 0);
        parkable.iter().filter_map(Weak::upgrade).collect()
    };
    wakes
        .iter()
        .filter(|wake| wake.cancel_if_due(cancel, by))
        .count()
}
