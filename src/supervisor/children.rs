//! A worker process as the master sees it: started on the shared listeners with a pipe for its
//! messages, and the messages read from that pipe.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::process::Command;

use super::message::{UnknownMessage, WorkerMessage};
use super::source_pin::{PIN_FD, PIN_FD_ENV};
use super::worker::{FIRST_LISTEN_FD, LIBRARY_FD, READY_FD};
use crate::listen::{notify, systemd};
use crate::stats::STATS_FD;
use crate::sys::logfile::spawn_blocked;
use crate::sys::process::{dup_at_or_above, hand_down, pipe, set_blocking, Signal};
use crate::tls::TLS_FD;

pub(crate) use crate::sys::process::FD_FLOOR;
/// How much of a pipe is read at once; messages are a line each.
const READ_CHUNK: usize = 1024;

pub(crate) struct WorkerProcess {
    pub(crate) pid: i32,
    /// The lowest number no other live worker had when it started (`worker_number`).
    pub(crate) number: usize,
    /// The read end of the worker's pipe (non-blocking).
    pipe: File,
    /// Bytes of a line not complete yet.
    pending: Vec<u8>,
}

impl WorkerProcess {
    /// Start `exe __worker ARGS` with the `listeners` at `FIRST_LISTEN_FD` and up, a pipe as
    /// `READY_FD`, `library` as `LIBRARY_FD`, the TLS certificate and key (if any) as `TLS_FD`,
    /// and a `--stats` counter page as `STATS_FD` (`listeners`, `library`, the certificate and
    /// the page at or above `FD_FLOOR`), and its generation's source pin as `PIN_FD`
    /// (`source_pin.rs`). The worker gets SIGTERM if the master dies.
    pub(crate) fn spawn(
        exe: &Path,
        args: &[OsString],
        listeners: &[BorrowedFd<'_>],
        library: BorrowedFd<'_>,
        tls: Option<BorrowedFd<'_>>,
        stats_page: Option<BorrowedFd<'_>>,
        pin: BorrowedFd<'_>,
    ) -> io::Result<WorkerProcess> {
        let (read_end, write_end) = message_pipe()?;
        let mut command = Command::new(exe);
        command.arg("__worker").args(args);
        // systemd's variables are the master's: the listeners arrive at other numbers, and an
        // app must not speak for the service.
        for name in systemd::VARIABLES.iter().chain(&notify::VARIABLES) {
            command.env_remove(name);
        }
        command.env_remove(super::upgrade::ENV);
        command.env(PIN_FD_ENV, PIN_FD.to_string());
        let mut moves = vec![
            (write_end.as_raw_fd(), READY_FD),
            (library.as_raw_fd(), LIBRARY_FD),
            (pin.as_raw_fd(), PIN_FD),
        ];
        moves.extend(
            (FIRST_LISTEN_FD..)
                .zip(listeners)
                .map(|(to, from)| (from.as_raw_fd(), to)),
        );
        moves.extend(stats_page.map(|page| (page.as_raw_fd(), STATS_FD)));
        if let Some(tls) = tls {
            moves.push((tls.as_raw_fd(), TLS_FD));
        }
        hand_down(&mut command, moves, Signal::Term);
        // A reopen the master forwards while this worker starts waits for its handler.
        spawn_blocked(&mut command, crate::logging::WORKER_REOPEN_SIGNAL);
        let spawned = command.spawn();
        // The child has its own copy; the master must not hold the write end, or it would
        // never see the pipe close.
        drop(write_end);
        let child = spawned?;
        let pid = i32::try_from(child.id())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "pid out of range"))?;
        Ok(WorkerProcess {
            pid,
            number: 0,
            pipe: File::from(read_end),
            pending: Vec::new(),
        })
    }

    /// The number for a worker about to start: the lowest no live worker in `workers` has
    /// (uWSGI's worker ids). A replacement takes the number of the worker it replaces, and
    /// numbers stay below twice `-w` (during a swap both generations have workers), so they make
    /// bounded metric labels and stable process titles.
    pub(crate) fn next_number(workers: &[WorkerProcess]) -> usize {
        lowest_free(&workers.iter().map(|w| w.number).collect::<Vec<_>>())
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

/// The lowest number not in `used`.
fn lowest_free(used: &[usize]) -> usize {
    (0..).find(|n| !used.contains(n)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_worker_takes_the_lowest_free_number() {
        assert_eq!(lowest_free(&[]), 0);
        assert_eq!(lowest_free(&[0, 1]), 2);
        // Worker 0 died: its replacement is 0 again.
        assert_eq!(lowest_free(&[1, 2]), 0);
        assert_eq!(lowest_free(&[0, 2]), 1);
    }
}
