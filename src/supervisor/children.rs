//! A worker process as the master sees it: started on the shared listener with a pipe for its
//! messages, and the messages read from that pipe.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::Command;

use super::message::{UnknownMessage, WorkerMessage};
use super::worker::{LIBRARY_FD, LISTEN_FD, READY_FD};
use crate::sys::process::{dup_at_or_above, hand_down, pipe, set_blocking, Signal};
use crate::tls::TLS_FD;

/// The master keeps the descriptors it hands down at or above this number, so the child's dup2
/// onto `LISTEN_FD`, `READY_FD` and `LIBRARY_FD` cannot overwrite one before it is moved.
pub(crate) const FD_FLOOR: RawFd = 100;
/// How much of a pipe is read at once; messages are a line each.
const READ_CHUNK: usize = 1024;

pub(crate) struct WorkerProcess {
    pub(crate) pid: i32,
    /// The read end of the worker's pipe (non-blocking).
    pipe: File,
    /// Bytes of a line not complete yet.
    pending: Vec<u8>,
}

impl WorkerProcess {
    /// Start `exe __worker ARGS` with `listener` as `LISTEN_FD`, a pipe as `READY_FD`,
    /// `library` as `LIBRARY_FD` and `tls` (if any) as `TLS_FD` (each at or above `FD_FLOOR`).
    /// The worker gets SIGTERM if the master dies.
    pub(crate) fn spawn(
        exe: &Path,
        args: &[OsString],
        listener: BorrowedFd<'_>,
        library: BorrowedFd<'_>,
        tls: Option<BorrowedFd<'_>>,
    ) -> io::Result<WorkerProcess> {
        let (read_end, write_end) = message_pipe()?;
        let mut command = Command::new(exe);
        command.arg("__worker").args(args);
        let mut moves = vec![
            (listener.as_raw_fd(), LISTEN_FD),
            (write_end.as_raw_fd(), READY_FD),
            (library.as_raw_fd(), LIBRARY_FD),
        ];
        if let Some(tls) = tls {
            moves.push((tls.as_raw_fd(), TLS_FD));
        }
        hand_down(&mut command, moves, Signal::Term);
        let spawned = command.spawn();
        // The child has its own copy; the master must not hold the write end, or it would
        // never see the pipe close.
        drop(write_end);
        let child = spawned?;
        let pid = i32::try_from(child.id())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "pid out of range"))?;
        Ok(WorkerProcess {
            pid,
            pipe: File::from(read_end),
            pending: Vec::new(),
        })
    }

    pub(crate) fn pipe(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }

    /// The whole messages the worker wrote since the last call.
    pub(crate) fn read_messages(&mut self) -> Vec<Result<WorkerMessage, UnknownMessage>> {
        let mut buf = [0u8; READ_CHUNK];
        loop {
            match self.pipe.read(&mut buf) {
                // The worker closed its end: it is exiting.
                Ok(0) => break,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("cannot read worker {}'s pipe: {e}", self.pid);
                    break;
                }
            }
        }
        let mut messages = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            messages.push(WorkerMessage::decode(&String::from_utf8_lossy(
                &line[..end],
            )));
        }
        messages
    }
}

/// A pipe whose ends sit at or above `FD_FLOOR`, close-on-exec (the child's dup2 clears that on
/// its copy); the master's read end does not block, the worker's write end does: it writes a
/// few short lines and must not lose one.
fn message_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read_end, write_end) = pipe()?;
    let read_end = dup_at_or_above(read_end.as_fd(), FD_FLOOR)?;
    let write_end = dup_at_or_above(write_end.as_fd(), FD_FLOOR)?;
    set_blocking(write_end.as_fd())?;
    Ok((read_end, write_end))
}
