//! Ending the process at once.

/// `_exit(code)`: end the process now, without destructors, atexit handlers or stdio flushes,
/// any of which could block on a lock held by a thread that is stuck (in app code, say).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes a plain integer and does not return; nothing of ours runs afterwards.
    unsafe { libc::_exit(code) }
}
