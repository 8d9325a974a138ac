//! What the master tells systemd (`NOTIFY_SOCKET`, for `Type=notify` and `Type=notify-reload`
//! services): `READY=1` once the first generation serves; `RELOADING=1` when a hot swap starts
//! and `READY=1` when it is done or failed (the old generation keeps serving); `STOPPING=1` when
//! a stop begins; `STATUS=` with the serving generation and its library's hash; and, when
//! `WATCHDOG_USEC` is set for this process, `WATCHDOG=1` every half of it from the master's
//! loop, so a master that stops looping is restarted.
//!
//! The master learns what happens from the generation state machine's status lines
//! (`booting G HASH`, `ready G HASH`, `failed G MESSAGE`, `crash-loop G HASH MESSAGE`, the ones
//! `--pid FILE.status` gets).
//! Without `NOTIFY_SOCKET` every call does nothing.

use std::time::{Duration, Instant};

use crate::sys::notify::{monotonic_usec, NotifySocket};

/// The variables of the notification protocol (removed from the workers' environment: a
/// worker's app must not speak for the service).
pub(crate) const VARIABLES: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

pub(crate) struct Notifier {
    socket: Option<NotifySocket>,
    /// Half of `WATCHDOG_USEC`, and when the next `WATCHDOG=1` is due.
    watchdog: Option<(Duration, Instant)>,
    /// The first generation served (`READY=1` was sent).
    served: bool,
    /// The generation serving and its library's hash, once one is.
    serving: Option<(String, String)>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`; a socket that cannot be used is
    /// a warning, not a reason not to serve.
    pub(crate) fn from_env() -> Notifier {
        let var = |name| std::env::var(name).ok();
        let socket = var("NOTIFY_SOCKET").and_then(|name| match NotifySocket::new(&name) {
            Ok(socket) => Some(socket),
            Err(e) => {
                log::warn!("NOTIFY_SOCKET={name}: {e}; systemd will not hear from this server");
                None
            }
        });
        // WATCHDOG_PID names the process the watchdog is for; without it, this one.
        let for_me = match var("WATCHDOG_PID") {
            Some(pid) => pid.trim() == std::process::id().to_string(),
            None => true,
        };
        let watchdog = var("WATCHDOG_USEC")
            .filter(|_| for_me && socket.is_some())
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|&usec| usec > 0)
            .map(|usec| (Duration::from_micros(usec) / 2, Instant::now()));
        Notifier {
            socket,
            watchdog,
            served: false,
            serving: None,
        }
    }

    fn send(&self, state: &str) {
        if let Some(socket) = &self.socket {
            if let Err(e) = socket.send(state) {
                log::warn!("cannot notify systemd ({state:?}): {e}");
            }
        }
    }

    fn status(&self) -> String {
        match &self.serving {
            Some((generation, hash)) => {
                format!("STATUS=generation {generation} serving, library sha {hash}")
            }
            None => "STATUS=starting".to_owned(),
        }
    }

    /// This process is the service's main process now (the new master of a binary upgrade;
    /// systemd takes it from any process only with `NotifyAccess=all`).
    pub(crate) fn main_pid(&self) {
        self.send(&format!("MAINPID={}", std::process::id()));
    }

    /// A new master speaks for the service now: this one says nothing more.
    pub(crate) fn silence(&mut self) {
        self.socket = None;
        self.watchdog = None;
    }

    /// The first generation serves.
    pub(crate) fn serving(&mut self) {
        self.served = true;
        self.send(&format!("READY=1\n{}", self.status()));
    }

    /// A status line of the generation state machine.
    pub(crate) fn status_line(&mut self, line: &str) {
        let mut words = line.splitn(3, ' ');
        let (Some(what), Some(generation), rest) = (words.next(), words.next(), words.next())
        else {
            return;
        };
        let rest = rest.unwrap_or_default();
        match what {
            "booting" if self.served => {
                let monotonic = match monotonic_usec() {
                    Ok(usec) => format!("\nMONOTONIC_USEC={usec}"),
                    Err(_) => String::new(),
                };
                self.send(&format!(
                    "RELOADING=1{monotonic}\nSTATUS=swapping to generation {generation} (library sha {rest})"
                ));
            }
            "ready" => {
                self.serving = Some((generation.to_owned(), rest.to_owned()));
                if self.served {
                    self.send(&format!("READY=1\n{}", self.status()));
                }
            }
            "failed" if self.served => {
                let serving = self.status();
                self.send(&format!(
                    "READY=1\n{serving}; the swap to generation {generation} failed: {rest}"
                ));
            }
            _ => {}
        }
    }

    /// A stop begins.
    pub(crate) fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    /// Called from every turn of the master's loop: `WATCHDOG=1` when due.
    pub(crate) fn tick(&mut self, now: Instant) {
        let Some((interval, due)) = &mut self.watchdog else {
            return;
        };
        if now >= *due {
            *due = now + *interval;
            self.send("WATCHDOG=1");
        }
    }

    /// The longest the master may sleep before the next `WATCHDOG=1` is due.
    pub(crate) fn next_due(&self, now: Instant) -> Option<Duration> {
        self.watchdog
            .map(|(_, due)| due.saturating_duration_since(now))
    }
}
