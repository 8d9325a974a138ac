//! Taking the GIL on a serving thread: with a thread state kept for the thread's life, and in
//! the order the serving threads asked for it.
//!
//! **Kept thread state.** The server's serving threads are not Python threads. PyO3's
//! `Python::with_gil` on such a thread calls `PyGILState_Ensure`, which creates a thread state, and
//! `PyGILState_Release`, which deletes it again when the count drops to zero. A thread state is not
//! cheap: CPython 3.11 maps and unmaps its 16 KiB frame stack (`mmap`/`munmap`), reads the native
//! thread id (`gettid`), takes the runtime's lock (futexes), and gives the thread a fresh
//! `threading.local` and `contextvars` context each time. The Flask hello took the GIL four times
//! per request, and `strace -c -f` counted 4 `mmap`, 4 `munmap`, 4 `gettid` and about 19 futex
//! calls per request (uWSGI, which keeps one thread state per thread: 3 futex calls, no `mmap`).
//! [`with_gil`] keeps one per serving thread instead, as `PyGILState_Ensure` documents for threads
//! that call into Python repeatedly: the first call ensures a state and detaches it (GIL released,
//! state kept, its count held at one); later calls attach and detach it. A thread-local destructor
//! deletes it when the serving thread ends (the server joins its threads before `shutdown`; Python
//! is never finalised, see [`crate::interpreter`]).
//!
//! **Who goes next.** The server's serving threads each take a request and then need the GIL
//! to run it; with a GIL-bound app on a shared core, every time the GIL goes to another serving
//! thread is a context switch. Plain CPython lets the releasing thread take the GIL straight back
//! for its next request, and a waiter forces a switch only after 5 ms in which the GIL did not
//! change hands — which a thread releasing and retaking it resets every time, so with
//! `--threads 4` requests were answered out of turn (with 50 connections the p99 request waited
//! for ~150 others' responses instead of ~49, `bench/wsgi_order.py`; one trial served 1,912
//! requests in 4 s). A FIFO line for the GIL (an earlier version) kept the turns but made nearly
//! every request a hand-over: 1.03 switches and 101 µs of CPU per Flask request, against 0.04
//! and 83 µs with `--threads 1`. So the serving threads starting a request go through a
//! [`GilLine`]: in order, only the first in line waiting inside CPython, except that the thread
//! that started the last request may go straight in for its next one while the first in line
//! has waited less than `OVERDUE` (0.5 ms): about half the hand-overs, and a turn order as fair
//! as granian's. The line is left once the GIL is taken, never held while running Python, so app
//! code that releases the GIL (blocking I/O, `time.sleep`) lets the other serving threads in as
//! before, and threads the app started itself compete as usual. A request's later acquisitions
//! (its body's `next` and `close`, [`with_gil_continuing`]) do not line up: they finish a
//! request already under way.

use crate::gil_line::GilLine;
use pyo3::ffi;
use pyo3::prelude::*;
use std::cell::RefCell;

/// The serving threads' line for the GIL (see the module docs).
static GIL_LINE: GilLine = GilLine::new();

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
/// the first call on, and takes the GIL through the serving threads' line (see the module docs).
/// Only call it after `init` started Python.
pub fn with_gil<F, R>(f: F) -> R
where
    F: for<'py> FnOnce(Python<'py>) -> R,
{
    enter(true, f)
}

/// [`with_gil`] for a request already under way (its body's `next` and `close`): takes the GIL
/// without lining up.
pub fn with_gil_continuing<F, R>(f: F) -> R
where
    F: for<'py> FnOnce(Python<'py>) -> R,
{
    enter(false, f)
}

fn enter<F, R>(starts_request: bool, f: F) -> R
where
    F: for<'py> FnOnce(Python<'py>) -> R,
{
    // SAFETY: PyGILState_Check only reads whether this thread's state is the current one; Python
    // is initialised (the caller).
    if unsafe { ffi::PyGILState_Check() } != 0 {
        // Already inside Python on this thread: nothing to wait for.
        return Python::with_gil(f);
    }
    // A thread that is ending (its thread-locals already destroyed) takes the GIL the plain way.
    let kept = KEPT.try_with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.is_none() {
            // SAFETY: Python is initialised (the caller) and this thread does not hold the GIL
            // (checked above).
            *kept = Some(unsafe { KeptThreadState::keep() });
        }
    });
    if kept.is_err() {
        return Python::with_gil(f);
    }
    let _attached = {
        let _entry = GIL_LINE.enter(starts_request);
        // SAFETY: this thread's kept state exists (just made sure) and is detached (the GIL is not
        // held here: checked above), so attaching it takes the GIL.
        unsafe { Attached::attach() }
        // `_entry` ends here: the next in line may go into CPython's wait.
    };
    // The GIL is held with this thread's state current: PyO3 finds it so and neither takes nor
    // releases it; `_attached` releases it afterwards, also when `f` panics.
    Python::with_gil(f)
}

/// The GIL taken through this thread's kept state; dropping it releases the GIL (the state stays).
struct Attached;

impl Attached {
    /// # Safety
    /// This thread has a kept, detached thread state.
    unsafe fn attach() -> Attached {
        // SAFETY: the caller; PyGILState_GetThisThreadState is the kept state.
        unsafe { ffi::PyEval_RestoreThread(ffi::PyGILState_GetThisThreadState()) };
        Attached
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // SAFETY: this thread holds the GIL through its kept state (`attach`), and PyO3's guard
        // inside has given back whatever it counted; detaching keeps the state for the next call.
        unsafe { ffi::PyEval_SaveThread() };
    }
}
