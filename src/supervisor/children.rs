//! A worker process as the master sees it: spawned on the shared listener with a ready pipe,
//! and the lines it writes on that pipe.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, RawFd};
use std::path::Path;
use std::process::Command;

use super::process::pipe;
use super::worker::{LISTEN_FD, READY_FD};

pub(crate) struct Worker {
    pub(crate) pid: i32,
    pub(crate) generation: u64,
    pub(crate) ready: bool,
    /// Said it is draining on its own (--max-requests): already replaced.
    pub(crate) retiring: bool,
    pub(crate) pipe: fs::File,
    pending: Vec<u8>,
    /// Said `stopped`: its listener is closed, it accepts no new connection.
    pub(crate) stopped: bool,
}

impl Worker {
    /// Start `exe __worker ARGS` with the listener as fd 3 and a ready pipe as fd 4.
    pub(crate) fn spawn(
        exe: &Path,
        args: &[OsString],
        listen_fd: RawFd,
        generation: u64,
    ) -> io::Result<Worker> {
        let (read_end, write_fd) = pipe()?;
        let mut command = Command::new(exe);
        command.arg("__worker").args(args);
        // SAFETY: the closure runs in the forked child before exec and only calls
        // async-signal-safe functions (dup2, prctl) on descriptors that are open in the parent.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(move || {
                if libc::dup2(listen_fd, LISTEN_FD) < 0 || libc::dup2(write_fd, READY_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
                // A worker must not outlive a master killed with -9.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let spawned = command.spawn();
        // SAFETY: write_fd is ours (from pipe()); the child has its own copy now.
        unsafe { libc::close(write_fd) };
        let child = spawned?;
        // SAFETY: read_end is a fresh descriptor from pipe() that nothing else owns.
        let pipe = unsafe { fs::File::from_raw_fd(read_end) };
        Ok(Worker {
            pid: child.id() as i32,
            generation,
            ready: false,
            retiring: false,
            pipe,
            pending: Vec::new(),
            stopped: false,
        })
    }

    /// Whole lines the worker wrote since the last call (the pipe is non-blocking).
    pub(crate) fn read_lines(&mut self) -> Vec<String> {
        let mut buf = [0u8; 1024];
        loop {
            match self.pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            }
        }
        let mut lines = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        lines
    }
}
