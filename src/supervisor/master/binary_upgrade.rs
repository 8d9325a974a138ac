//! The master's side of `USR2` (`crate::supervisor::upgrade`): as the old master, start the
//! new one and hand it everything once it serves; as the new one, take `--pid FILE` over.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use super::Master;
use crate::listen::open::SocketFile;
use crate::stats::Stats;
use crate::supervisor::generation::Event;
use crate::supervisor::pid_file::PidFile;
use crate::supervisor::upgrade::{self, Progress};

impl Master {
    /// USR2: start a new master from the executable's path; this one serves until it does.
    pub(super) fn start_upgrade(&mut self) {
        let refuse = if self.upgrading.is_some() {
            Some("a binary upgrade is under way already")
        } else if self.handed_over || self.machine.is_stopping() || self.listeners.is_empty() {
            Some("this master is stopping")
        } else if self.handoff.is_some() {
            Some("this master is not serving yet")
        } else {
            None
        };
        if let Some(why) = refuse {
            log::warn!("SIGUSR2 ignored: {why}");
            return;
        }
        let listeners: Vec<upgrade::Passing<'_>> = self
            .listeners
            .iter()
            .zip(&self.names)
            .map(|((fd, options), name)| (fd.as_fd(), *options, name.as_str()))
            .collect();
        let started = upgrade::start(
            &self.exe,
            &self.argv,
            &listeners,
            self.pid_file.as_ref().map(PidFile::fd),
            self.stats.as_ref().map(Stats::listener_fd),
            Duration::from_secs(self.args.upgrade.upgrade_timeout),
        );
        match started {
            Ok(upgrading) => {
                log::info!(
                    "SIGUSR2: started a new master (pid {}) from {}; this one serves until it does",
                    upgrading.pid,
                    self.exe.display()
                );
                self.upgrading = Some(upgrading);
            }
            Err(e) => log::error!(
                "binary upgrade failed: cannot start {}: {e}; still serving with this master",
                self.exe.display()
            ),
        }
    }

    /// The new master serves: hand it every shared file and drain; or it failed: keep serving.
    pub(super) fn watch_upgrade(&mut self) {
        let Some(upgrading) = &mut self.upgrading else {
            return;
        };
        match upgrading.progress(Instant::now()) {
            Progress::Waiting => {}
            Progress::Failed(why) => {
                log::error!("binary upgrade failed: {why}; still serving with this master");
                self.upgrading = None;
            }
            Progress::Ready => {
                let pid = upgrading.pid;
                self.upgrading = None;
                log::info!(
                    "binary upgrade: the new master (pid {pid}) serves; this one (pid {}) drains its workers and exits",
                    std::process::id()
                );
                self.handed_over = true;
                if let Some(pid_file) = &mut self.pid_file {
                    pid_file.hand_over();
                }
                for file in self.socket_files.drain(..) {
                    file.keep();
                }
                if let Some(mut stats) = self.stats.take() {
                    stats.keep_socket_file();
                }
                self.notifier.silence();
                self.apply(Event::GracefulStop { signal: "SIGUSR2" });
            }
        }
    }

    /// The first generation of the new master of a binary upgrade serves: `--pid FILE` names
    /// this master from now on, systemd hears its pid, and the old master drains.
    pub(super) fn take_over(&mut self) {
        let Some(mut handoff) = self.handoff.take() else {
            return;
        };
        if let Some(pid_file) = &mut self.pid_file {
            if let Err(e) = pid_file.write_pid() {
                log::warn!("cannot write this master's pid into --pid FILE: {e}");
            }
        }
        if let Some(status) = self.held_status.take() {
            self.write_status(&status);
        }
        // The files it was handed are this master's now, to remove when it exits; until here a
        // failure left them to the old master, which still serves on them.
        self.socket_files = self
            .names
            .iter()
            .filter_map(|n| SocketFile::adopt(n))
            .collect();
        if let Some(stats) = &mut self.stats {
            stats.own_socket_file();
        }
        self.notifier.main_pid();
        handoff.ready();
    }
}
