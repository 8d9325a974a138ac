//! Shared memory between the master and one worker: an in-memory file (memfd) that both map
//! read-write, holding nothing but `AtomicU64` counters — the worker adds, the master reads.
//!
//! The file is sealed against shrinking and growing, so a worker (which runs app code and holds
//! the descriptor) cannot truncate it under the master's mapping: a read from a truncated
//! mapping would kill the master with SIGBUS.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::{io, mem};

use super::syscall;

/// The size can change no more once both sides rely on it.
const SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// A read-write shared mapping of `words` counters, unmapped on drop.
pub(crate) struct SharedCounters {
    base: NonNull<AtomicU64>,
    words: usize,
}

// SAFETY: the mapping is plain memory only ever accessed through `AtomicU64`s, which any thread
// (and any process) may use concurrently.
unsafe impl Send for SharedCounters {}
// SAFETY: as above: `&SharedCounters` gives out only `&[AtomicU64]`.
unsafe impl Sync for SharedCounters {}

impl SharedCounters {
    /// A new close-on-exec in-memory file named `name` (shown in `/proc/PID/fd`) of `words`
    /// zeroed counters, sealed against resizing, and the caller's mapping of it.
    pub(crate) fn create(name: &CStr, words: usize) -> io::Result<(OwnedFd, SharedCounters)> {
        let len = byte_len(words)?;
        let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
        // SAFETY: name is NUL-terminated and outlives the call; the flags are valid.
        let fd = syscall!(memfd_create(name.as_ptr(), flags))?;
        // SAFETY: memfd_create returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let size = libc::off_t::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mapping too large"))?;
        // SAFETY: ftruncate on a descriptor we own; a new memfd reads as zeroes.
        syscall!(ftruncate(fd.as_raw_fd(), size))?;
        // SAFETY: F_ADD_SEALS only changes the seals of an open memfd.
        syscall!(fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS))?;
        let counters = SharedCounters::map(fd.as_fd(), words)?;
        Ok((fd, counters))
    }

    /// Map `words` counters of the in-memory file `fd`; refused unless the file is exactly that
    /// large and sealed against resizing (so no one can make the mapping fault).
    pub(crate) fn map(fd: BorrowedFd<'_>, words: usize) -> io::Result<SharedCounters> {
        let len = byte_len(words)?;
        // SAFETY: F_GET_SEALS only reads the seals of `fd`.
        let seals = syscall!(fcntl(fd.as_raw_fd(), libc::F_GET_SEALS))?;
        // SAFETY: a zeroed stat is a valid out-buffer for fstat.
        let mut stat: libc::stat = unsafe { mem::zeroed() };
        // SAFETY: `stat` is a valid out-pointer for the duration of the call.
        syscall!(fstat(fd.as_raw_fd(), &mut stat))?;
        let sealed = seals & (libc::F_SEAL_SHRINK | libc::F_SEAL_GROW)
            == libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
        if !sealed || u64::try_from(stat.st_size).ok() != Some(len as u64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a sealed counter file of the expected size",
            ));
        }
        // SAFETY: a new shared mapping chosen by the kernel (no fixed address) of a file that is
        // `len` bytes long and cannot shrink, so every byte of the mapping stays backed.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<AtomicU64>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(SharedCounters { base, words })
    }

    /// The counters.
    pub(crate) fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is `words` page-aligned (so 8-aligned) `u64`s, readable and
        // writable, valid until drop; `AtomicU64` has the layout of `u64`, every bit pattern is
        // a valid value, and concurrent access from other processes goes through atomics too.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.words) }
    }

    /// Keep the mapping for the rest of the process's life (a worker counts until it exits).
    pub(crate) fn leak(self) -> &'static [AtomicU64] {
        let words = self.words;
        let base = self.base;
        mem::forget(self);
        // SAFETY: as in `words`, and the mapping is never unmapped now (forgotten above).
        unsafe { std::slice::from_raw_parts(base.as_ptr(), words) }
    }
}

impl Drop for SharedCounters {
    fn drop(&mut self) {
        let len = self.words * mem::size_of::<AtomicU64>();
        // SAFETY: unmaps exactly the mapping this value made; no reference into it outlives
        // `self` (`words` borrows it).
        if let Err(e) = syscall!(munmap(self.base.as_ptr().cast(), len)) {
            log::warn!("cannot unmap a counter page: {e}");
        }
    }
}

fn byte_len(words: usize) -> io::Result<usize> {
    match words.checked_mul(mem::size_of::<AtomicU64>()) {
        Some(len) if len > 0 => Ok(len),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a counter mapping needs between 1 and usize::MAX/8 words",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn two_mappings_of_one_file_share_their_counters() {
        let (fd, master) = SharedCounters::create(c"webserver-test-counters", 512).unwrap();
        let worker = SharedCounters::map(fd.as_fd(), 512).unwrap();
        worker.words()[7].fetch_add(5, Ordering::Relaxed);
        assert_eq!(master.words()[7].load(Ordering::Relaxed), 5);
        assert!(master.words()[8..]
            .iter()
            .all(|w| w.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn the_file_cannot_be_resized_nor_mapped_at_another_size() {
        let (fd, _master) = SharedCounters::create(c"webserver-test-counters", 512).unwrap();
        let file = std::fs::File::from(fd.try_clone().unwrap());
        assert!(file.set_len(0).is_err(), "shrinking must be refused");
        assert!(file.set_len(1 << 20).is_err(), "growing must be refused");
        assert!(SharedCounters::map(fd.as_fd(), 1024).is_err());
    }
}
