//! The C allocator's hold on memory the process freed.
//!
//! glibc's malloc gives freed memory back to the kernel only from the top of a heap, and only
//! past a trim threshold, which it raises to twice the size of every large block (one it had
//! `mmap`ed) that is freed: a worker that read a few-MiB file once (the app's library, a
//! configuration) then keeps that much free memory resident at the top of every thread's arena,
//! for good. Memory freed in the middle of a heap stays resident too. So after a burst of
//! connections ends, their state is freed but the process keeps the pages.
//!
//! Two calls fix that: [`fix_trim_threshold`] pins the threshold at glibc's default (128 KiB),
//! which ends the raising (blocks of 128 KiB or more are then always `mmap`ed and unmapped when
//! freed, as before the first large free), and [`release_free_memory`] (`malloc_trim`) returns
//! the free pages inside every arena (`madvise(MADV_DONTNEED)`) and the main heap's top.

/// glibc's default trim threshold (and `mmap` threshold, which pinning the first keeps there).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 128 * 1024;

/// Stops malloc from raising its trim threshold as large blocks are freed (see the module docs).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn fix_trim_threshold() {
    // SAFETY: mallopt takes no pointers; it sets a malloc parameter under malloc's own lock.
    let ok = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) };
    if ok != 1 {
        log::debug!("mallopt(M_TRIM_THRESHOLD) refused; freed memory may stay resident");
    }
}

/// Gives the free memory of every malloc arena back to the kernel; `true` if any was.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn release_free_memory() -> bool {
    // SAFETY: malloc_trim takes no pointers; it locks each arena in turn and only touches the
    // allocator's own free chunks, so it is safe to call from any thread at any time.
    unsafe { libc::malloc_trim(0) != 0 }
}

/// Other C libraries (musl) have neither parameter nor `malloc_trim`: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn fix_trim_threshold() {}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_free_memory() -> bool {
    false
}
