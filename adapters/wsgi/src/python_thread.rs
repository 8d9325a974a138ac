//! Taking the GIL on a serving thread without making a new Python thread state each time.
//!
//! The server's serving threads are not Python threads. PyO3's `Python::with_gil` on such a
//! thread calls `PyGILState_Ensure`, which creates a thread state, and `PyGILState_Release`, which
//! destroys it again when the count drops to zero. A thread state is not cheap: CPython 3.11 maps
//! and unmaps its 16 KiB frame stack (`mmap`/`munmap`), reads the native thread id (`gettid`),
//! takes the runtime's lock twice (futexes), and gives the thread a fresh `threading.local` and
//! `contextvars` context each time. A request took the GIL four times (call, two `next`, `close`),
//! so the Flask hello paid all of that four times per request (`strace -c -f`: 4 `mmap`, 4
//! `munmap`, 4 `gettid` and about 19 futex calls per request, where uWSGI, which keeps one
//! thread state per thread, makes 3 futex calls and no `mmap`).
//!
//! [`with_gil`] keeps one thread state per serving thread for the thread's life — what
//! `PyGILState_Ensure` documents for threads that call into Python repeatedly: the first call
//! ensures a thread state and detaches it (GIL released, state kept, its count held at one), so
//! every later `with_gil` only attaches it. A thread-local destructor releases the state when the
//! serving thread ends (the server joins its threads before `shutdown`; Python is never
//! finalised, see [`crate::interpreter`]).

use pyo3::ffi;
use pyo3::prelude::*;
use std::cell::RefCell;

/// This thread's kept Python thread state; dropping it deletes the state.
struct KeptThreadState {
    gstate: ffi::PyGILState_STATE,
}

thread_local! {
    static KEPT: RefCell<Option<KeptThreadState>> = const { RefCell::new(None) };
}

impl KeptThreadState {
    /// Creates (or finds) this thread's state, counts one use of it, and releases the GIL.
    ///
    /// # Safety
    /// Python is initialised and this thread does not hold the GIL.
    unsafe fn keep() -> KeptThreadState {
        // SAFETY: Python is initialised (the caller); PyGILState_Ensure takes the GIL for a thread
        // that does not hold it and returns the state to restore, and PyEval_SaveThread then
        // releases the GIL this thread now holds, leaving the thread state alive and detached.
        unsafe {
            let gstate = ffi::PyGILState_Ensure();
            ffi::PyEval_SaveThread();
            KeptThreadState { gstate }
        }
    }
}

impl Drop for KeptThreadState {
    fn drop(&mut self) {
        // SAFETY: runs on the thread that made the state (a thread-local), which does not hold the
        // GIL here (every `with_gil` has returned). PyGILState_GetThisThreadState is that state
        // (the kept count keeps it alive); attaching it takes the GIL, and the matching
        // PyGILState_Release drops the count to zero, which clears and deletes it and releases
        // the GIL. Python is never finalised, so the interpreter is still there.
        unsafe {
            let tstate = ffi::PyGILState_GetThisThreadState();
            if tstate.is_null() {
                return;
            }
            ffi::PyEval_RestoreThread(tstate);
            ffi::PyGILState_Release(self.gstate);
        }
    }
}

/// `Python::with_gil` for the bridge's entry points: keeps this thread's Python thread state from
/// the first call on (see the module docs). Only call it after `init` started Python.
pub(crate) fn with_gil<F, R>(f: F) -> R
where
    F: for<'py> FnOnce(Python<'py>) -> R,
{
    // A thread that is ending (its thread-locals already destroyed) takes the GIL the plain way.
    let _ = KEPT.try_with(|kept| {
        let mut kept = kept.borrow_mut();
        // SAFETY: PyGILState_Check only reads whether this thread's state is the current one;
        // Python is initialised (the caller).
        if kept.is_none() && unsafe { ffi::PyGILState_Check() } == 0 {
            // SAFETY: Python is initialised (the caller) and this thread does not hold the GIL
            // (checked just above).
            *kept = Some(unsafe { KeptThreadState::keep() });
        }
    });
    Python::with_gil(f)
}
