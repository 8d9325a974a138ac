//! `USR2`: upgrade the server binary without dropping a connection (gunicorn's and nginx's).
//!
//! The old master starts its executable again — the path it was started from, so a new build
//! put there is what runs — with the same arguments and environment (so `--config` is read
//! again), and hands it, at the descriptor numbers `WEBSERVER_UPGRADE` names: every listening
//! socket with its options, the `--stats` socket, `--pid FILE`'s open file (whose `flock` the
//! two masters then share: the lock never lapses) and the write end of a pipe. The new master
//! binds nothing: it serves on those sockets, and once its first generation is ready it writes
//! its pid into FILE, tells systemd `MAINPID=` and writes `ready` on the pipe. Then the old
//! master lets go of the files (they are the new master's now), drains its workers and exits.
//!
//! A new master that exits first, or is not ready within `--upgrade-timeout` (60 s by default),
//! is stopped; the old master keeps serving and says why in one line.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Args;

use super::children::FD_FLOOR;
use crate::listen::open::OpenListener;
use crate::listen::ListenerOptions;
use crate::sys::process::{
    claim_inherited, dup_at_or_above, hand_down_detached, kill, pipe, set_blocking, ChildExit,
    Signal,
};

/// The variable that tells a master it is the new one of an upgrade, and where its
/// descriptors are: one `WHAT FD [OPTIONS NAME]` line each.
pub(crate) const ENV: &str = "WEBSERVER_UPGRADE";
/// The master's `--upgrade-timeout`.
#[derive(Args, Debug, Clone)]
pub(crate) struct UpgradeArgs {
    /// How long a new master started by USR2 may take to serve (its workers ready) before the
    /// old master stops it and keeps serving, in seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60,
        env = "WEBSERVER_UPGRADE_TIMEOUT",
        value_parser = clap::value_parser!(u64).range(1..=86400),
        help_heading = "Timeouts"
    )]
    pub(crate) upgrade_timeout: u64,
}
/// The first descriptor number a new master finds its handed-down descriptors at.
const FIRST_FD: RawFd = 3;
const READY: &[u8] = b"ready\n";

/// What the old master handed to this one (the new master's side).
pub(crate) struct Handoff {
    ready: Option<File>,
    pub(crate) pid_file: Option<OwnedFd>,
    pub(crate) stats: Option<OwnedFd>,
    pub(crate) listeners: Vec<OpenListener>,
}

impl Handoff {
    /// This master's handoff, if an old master started it.
    pub(crate) fn from_env() -> Result<Option<Handoff>, String> {
        let Some(text) = std::env::var_os(ENV) else {
            return Ok(None);
        };
        let text = text
            .into_string()
            .map_err(|_| format!("{ENV} is not UTF-8"))?;
        let mut handoff = Handoff {
            ready: None,
            pid_file: None,
            stats: None,
            listeners: Vec::new(),
        };
        for line in text.lines() {
            let mut words = line.splitn(4, ' ');
            let (what, fd) = (words.next().unwrap_or_default(), words.next());
            let fd: RawFd = fd
                .and_then(|fd| fd.parse().ok())
                .ok_or_else(|| format!("{ENV}: '{line}' names no descriptor"))?;
            let fd = claim_inherited(fd).map_err(|e| format!("{ENV}: {e}"))?;
            match what {
                "ready" => handoff.ready = Some(File::from(fd)),
                "pid" => handoff.pid_file = Some(fd),
                "stats" => handoff.stats = Some(fd),
                "listener" => {
                    let options: ListenerOptions = words
                        .next()
                        .unwrap_or_default()
                        .parse()
                        .map_err(|e| format!("{ENV}: {e}"))?;
                    handoff.listeners.push(OpenListener {
                        socket: fd,
                        options,
                        name: words.next().unwrap_or_default().to_owned(),
                    });
                }
                other => return Err(format!("{ENV}: unknown descriptor kind '{other}'")),
            }
        }
        Ok(Some(handoff))
    }

    /// Tell the old master this one serves: it drains and exits.
    pub(crate) fn ready(&mut self) {
        if let Some(mut pipe) = self.ready.take() {
            if let Err(e) = pipe.write_all(READY) {
                log::warn!("cannot tell the old master this one serves: {e}");
            }
        }
    }
}

/// One listener to hand down: the socket, its options and its name.
pub(crate) type Passing<'a> = (BorrowedFd<'a>, ListenerOptions, &'a str);

/// An upgrade under way (the old master's side).
pub(crate) struct Upgrading {
    pub(crate) pid: i32,
    pipe: File,
    said: Vec<u8>,
    timeout: Duration,
    deadline: Instant,
    exited: Option<ChildExit>,
}

/// Where an upgrade is.
pub(crate) enum Progress {
    Waiting,
    Ready,
    Failed(String),
}

/// Start `exe` as the new master with `argv`'s arguments and this environment.
pub(crate) fn start(
    exe: &Path,
    argv: &[OsString],
    listeners: &[Passing<'_>],
    pid_file: Option<BorrowedFd<'_>>,
    stats: Option<BorrowedFd<'_>>,
    timeout: Duration,
) -> io::Result<Upgrading> {
    let (read_end, write_end) = pipe()?;
    set_blocking(write_end.as_fd())?;
    // Every source above the numbers the child gets them at, so no dup2 overwrites another.
    let mut keep: Vec<OwnedFd> = Vec::new();
    let mut moves = Vec::new();
    let mut lines = Vec::new();
    let mut next = FIRST_FD;
    let mut pass = |fd: BorrowedFd<'_>, kind: &str, rest: String| -> io::Result<()> {
        let high = dup_at_or_above(fd, FD_FLOOR)?;
        moves.push((high.as_raw_fd(), next));
        lines.push(format!("{kind} {next}{rest}"));
        keep.push(high);
        next += 1;
        Ok(())
    };
    pass(write_end.as_fd(), "ready", String::new())?;
    if let Some(fd) = pid_file {
        pass(fd, "pid", String::new())?;
    }
    if let Some(fd) = stats {
        pass(fd, "stats", String::new())?;
    }
    for (fd, options, name) in listeners {
        pass(*fd, "listener", format!(" {options} {name}"))?;
    }
    let mut command = Command::new(exe);
    command.args(argv.iter().skip(1)).env(ENV, lines.join("\n"));
    // WATCHDOG_PID names this master: without it the new one pings systemd's watchdog too,
    // which it must do once it is the main process.
    command.env_remove("WATCHDOG_PID");
    hand_down_detached(&mut command, moves);
    let child = command.spawn()?;
    drop(keep);
    drop(write_end);
    let pid = i32::try_from(child.id())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "pid out of range"))?;
    Ok(Upgrading {
        pid,
        pipe: File::from(read_end),
        said: Vec::new(),
        timeout,
        deadline: Instant::now() + timeout,
        exited: None,
    })
}

impl Upgrading {
    /// The pipe the new master says `ready` on (to wake the old master's loop).
    pub(crate) fn pipe(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }

    /// The new master ended (the old master reaped it).
    pub(crate) fn exited(&mut self, how: ChildExit) {
        self.exited = Some(how);
    }

    /// Read what the new master said, and judge.
    pub(crate) fn progress(&mut self, now: Instant) -> Progress {
        let mut buf = [0u8; 64];
        let mut closed = false;
        loop {
            match self.pipe.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => self.said.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if self.said.starts_with(READY) {
            return Progress::Ready;
        }
        let pid = self.pid;
        if let Some(how) = self.exited {
            return Progress::Failed(format!("the new master (pid {pid}) {how} before it served"));
        }
        if closed {
            // Exited (its exit is reaped next) or closed the pipe: either way, not serving.
            return Progress::Waiting;
        }
        if now >= self.deadline {
            if let Err(e) = kill(pid, Signal::Quit) {
                log::debug!("cannot stop the new master {pid}: {e}");
            }
            return Progress::Failed(format!(
                "the new master (pid {pid}) was not serving after {}s (--upgrade-timeout); it was stopped",
                self.timeout.as_secs()
            ));
        }
        Progress::Waiting
    }
}
