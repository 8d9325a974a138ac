//! An epoll instance and the eventfd that wakes its waiters.
//!
//! Every descriptor is registered edge-triggered for input (`EPOLLIN | EPOLLRDHUP | EPOLLET`),
//! and, for a connection whose output waits for its client, for room to send (`EPOLLOUT`),
//! with a caller-chosen `u64` token as the event's data; `wait` hands those tokens back. Many
//! threads may wait on one instance at once: the kernel queues them exclusively, so one event
//! wakes one waiter. The instance closes when the `Epoll` is dropped, so whoever waits on it
//! must keep it alive (the server's threads share it through an `Arc`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::syscall;

/// What every registration asks for: input (a peer's close counts), reported once per edge.
const READ_EDGE: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
/// Input, and room to send: for a connection whose output waits for its client.
const READ_WRITE_EDGE: u32 = READ_EDGE | libc::EPOLLOUT as u32;

/// An epoll instance, closed on drop.
#[derive(Debug)]
pub(crate) struct Epoll {
    fd: OwnedFd,
}

/// Room for the events of one `wait`.
pub(crate) struct Events {
    buf: Box<[libc::epoll_event]>,
    len: usize,
}

impl Events {
    pub(crate) fn with_capacity(capacity: usize) -> Events {
        Events {
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)].into_boxed_slice(),
            len: 0,
        }
    }

    /// The tokens of the events the last `wait` returned, in the kernel's order.
    pub(crate) fn tokens(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        // A by-value read: the struct is packed on some targets, so no reference to the field.
        self.buf[..self.len].iter().map(|event| event.u64)
    }

    /// The token of event `index` of the last `wait`.
    pub(crate) fn token(&self, index: usize) -> u64 {
        self.buf[..self.len][index].u64
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes a flag word and returns a new descriptor or -1.
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: `fd` was just created and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    /// Watch `fd` for input, reported with `token`. Input already there is reported at once.
    pub(crate) fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd.as_raw_fd(), token, READ_EDGE)
    }

    /// Watch `fd` for input and for room to send (`write: true`), or input only, with `token`:
    /// added if `add`, else the registration is changed. Readiness already there is reported at
    /// once either way.
    pub(crate) fn watch(
        &self,
        fd: BorrowedFd<'_>,
        token: u64,
        add: bool,
        write: bool,
    ) -> io::Result<()> {
        let op = if add {
            libc::EPOLL_CTL_ADD
        } else {
            libc::EPOLL_CTL_MOD
        };
        let events = if write { READ_WRITE_EDGE } else { READ_EDGE };
        self.control(op, fd.as_raw_fd(), token, events)
    }

    /// Re-arm `fd`'s registration: input already there raises a new edge, so the event is
    /// reported again (to whichever thread waits next).
    pub(crate) fn modify(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_MOD, fd.as_raw_fd(), token, READ_EDGE)
    }

    /// Stop watching `fd` (closing a descriptor also removes it).
    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: the descriptors are valid (`fd` is borrowed for the call); DEL ignores the
        // event pointer, which may be null since Linux 2.6.9.
        syscall!(epoll_ctl(
            self.fd.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            fd.as_raw_fd(),
            std::ptr::null_mut()
        ))?;
        Ok(())
    }

    fn control(&self, op: i32, fd: i32, token: u64, events: u32) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: both descriptors are valid for the call (the caller borrows `fd`), and `event`
        // is a valid epoll_event the kernel only reads.
        syscall!(epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event))?;
        Ok(())
    }

    /// Wait up to `timeout` for events; `events` then holds them (none on timeout). An
    /// interrupted wait returns with no events rather than an error.
    pub(crate) fn wait(&self, events: &mut Events, timeout: Duration) -> io::Result<()> {
        events.len = 0;
        let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
        let capacity = events.buf.len().min(i32::MAX as usize) as i32;
        // SAFETY: `events.buf` has room for `capacity` entries and is exclusively borrowed for
        // the call; the epoll descriptor is owned by `self`, alive for the call.
        match syscall!(epoll_wait(
            self.fd.as_raw_fd(),
            events.buf.as_mut_ptr(),
            capacity,
            millis
        )) {
            Ok(n) => {
                events.len = n as usize;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for Epoll {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// An eventfd: `wake` makes it readable, which raises one edge on every epoll it is added to.
#[derive(Debug)]
pub(crate) struct Waker {
    fd: OwnedFd,
}

impl Waker {
    pub(crate) fn new() -> io::Result<Waker> {
        // SAFETY: eventfd takes an initial count and flags and returns a new descriptor or -1.
        let fd = syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))?;
        // SAFETY: `fd` was just created and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Waker { fd })
    }

    /// Raise a new edge. The count is never read back, so once it is about to overflow it is
    /// reset first (EAGAIN would otherwise lose the wake-up).
    pub(crate) fn wake(&self) -> io::Result<()> {
        let one: u64 = 1;
        loop {
            // SAFETY: `one` is 8 readable bytes, as eventfd requires; the fd is owned by `self`.
            match syscall!(write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8)) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.reset()?,
                Err(e) => return Err(e),
            }
        }
    }

    fn reset(&self) -> io::Result<()> {
        let mut count: u64 = 0;
        // SAFETY: `count` is 8 writable bytes, as eventfd requires; the fd is owned by `self`.
        match syscall!(read(
            self.fd.as_raw_fd(),
            (&mut count as *mut u64).cast(),
            8
        )) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_is_reported_once_per_edge_with_its_token() {
        let epoll = Epoll::new().unwrap();
        let waker = Waker::new().unwrap();
        epoll.add(waker.as_fd(), 7).unwrap();
        let mut events = Events::with_capacity(4);
        epoll.wait(&mut events, Duration::ZERO).unwrap();
        assert_eq!(events.len(), 0);
        waker.wake().unwrap();
        epoll.wait(&mut events, Duration::from_secs(1)).unwrap();
        assert_eq!(events.tokens().collect::<Vec<_>>(), [7]);
        // Edge-triggered: no new edge, no new event.
        epoll.wait(&mut events, Duration::ZERO).unwrap();
        assert_eq!(events.len(), 0);
        // Re-arming reports the (still readable) eventfd again, under the new token.
        epoll.modify(waker.as_fd(), 9).unwrap();
        epoll.wait(&mut events, Duration::ZERO).unwrap();
        assert_eq!(events.token(0), 9);
        epoll.delete(waker.as_fd()).unwrap();
        waker.wake().unwrap();
        epoll.wait(&mut events, Duration::ZERO).unwrap();
        assert_eq!(events.len(), 0);
    }
}
