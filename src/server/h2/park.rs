//! Parked HTTP/2 streams (ABI 1.1): a stream whose app's body answered `WS_PENDING` holds no
//! serving thread. Its state waits in its [`StreamWake`], which the app's wakers and `h2` (for
//! the stream's next DATA frame, its end or its reset) both hold; a wake queues it for the
//! serving threads again, as a new stream is queued. A wake while the stream runs is remembered
//! and queues it as soon as it parks, so none is lost.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::driver::InFlight;
use super::stream::ConnInfo;
use super::transport::StreamState;
use super::{Job, Queue};
use crate::app::call;
use crate::app::environ::Environ;

/// Everything a parked stream needs to run again.
pub(crate) struct ParkedStream {
    pub(super) call: call::Parked,
    /// The app keeps pointers into it until its body's close: it goes with the stream.
    pub(super) environ: Environ,
    pub(super) state: StreamState,
    pub(super) info: Arc<ConnInfo>,
    pub(super) started: Option<Instant>,
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
    pub(super) fn new(queue: Arc<Queue>) -> StreamWake {
        StreamWake {
            queue,
            at: Mutex::new(Where::Running { woken: false }),
        }
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
pub(super) fn park(parked: ParkedStream) {
    let Some(wake) = parked.state.park.clone() else {
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
