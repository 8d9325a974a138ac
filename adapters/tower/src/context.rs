//! The app runtime's context on the threads that poll its futures (the server's serving threads,
//! its HTTP/2 thread): entered once per thread and kept, instead of entered and left around
//! every poll.
//!
//! A future polled by the adapter runs inside the app runtime's context, so that timers, I/O and
//! `tokio::spawn` work as on one of its own threads. Entering it (`Handle::enter`) and leaving
//! it cost about 130 instructions, once per poll — about one in two hundred of a hello request.
//! Hyper's connection task is inside its runtime already. So the first poll on a thread that is
//! in no runtime's context for good enters this one and stays: its guard is forgotten, which
//! leaves the context set until the thread ends (guards taken later on the thread nest inside it
//! and are dropped before it, the order `Handle::enter` asks for). The server's threads run
//! only app code besides its own, and one app per process, so staying does not put another
//! app's code in this runtime's context; a thread that polls for a second runtime (tests, an
//! in-process check) enters that one around each poll as before.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::{EnterGuard, Handle};

/// Numbers the runtimes made in this process (0: none).
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// The runtime whose context this thread stays in (0: none).
    static RESIDENT: Cell<usize> = const { Cell::new(0) };
}

/// An app runtime's handle, with the number that tells a thread whether it is inside it.
#[derive(Clone)]
pub(crate) struct AppRuntime {
    handle: Handle,
    id: usize,
}

impl AppRuntime {
    pub(crate) fn new(handle: Handle) -> AppRuntime {
        AppRuntime {
            handle,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Makes sure this thread is inside the runtime's context until the guard (if any) drops:
    /// no guard where the thread stays inside it.
    pub(crate) fn enter(&self) -> Option<EnterGuard<'_>> {
        match RESIDENT.with(Cell::get) {
            id if id == self.id => None,
            0 => {
                std::mem::forget(self.handle.enter());
                RESIDENT.with(|resident| resident.set(self.id));
                None
            }
            _ => Some(self.handle.enter()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::runtime::RuntimeFlavor;

    fn flavor() -> RuntimeFlavor {
        Handle::current().runtime_flavor()
    }

    #[test]
    fn a_thread_stays_in_the_first_runtime_and_visits_a_second() {
        let first = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let second = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (a, b) = (
            AppRuntime::new(first.handle().clone()),
            AppRuntime::new(second.handle().clone()),
        );
        std::thread::spawn(move || {
            assert!(
                Handle::try_current().is_err(),
                "a new thread is in no context"
            );
            assert!(a.enter().is_none(), "the first runtime is entered for good");
            assert_eq!(flavor(), RuntimeFlavor::MultiThread, "and stays entered");
            assert!(a.enter().is_none());
            {
                let guard = b.enter();
                assert!(
                    guard.is_some(),
                    "a second runtime is entered around its use"
                );
                assert_eq!(flavor(), RuntimeFlavor::CurrentThread);
            }
            assert_eq!(
                flavor(),
                RuntimeFlavor::MultiThread,
                "back in the first one"
            );
        })
        .join()
        .unwrap();
    }
}
