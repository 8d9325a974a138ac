//! Which signals the master acts on, which it logs and ignores, and the event each one stands
//! for.

use signal_hook::consts::{
    SIGALRM, SIGHUP, SIGINT, SIGIO, SIGPROF, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2,
    SIGVTALRM, SIGWINCH, SIGXCPU,
};

use crate::supervisor::generation::{Event, SwapCause};

/// The signals the master acts on.
pub(super) const HANDLED_SIGNALS: &[i32] = &[
    SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2,
];

/// Signals an operator may send from habit (gunicorn's WINCH) or a stray `kill` may
/// deliver, whose default action would end the master without a word (WINCH's is to ignore,
/// but gunicorn users expect it to do something): each is logged and ignored. PIPE stays
/// ignored as the Rust runtime set it (a handler would log every write to a closed socket); the
/// synchronous faults (SEGV, BUS, ILL, FPE, SYS, TRAP) and XFSZ keep their default action.
pub(super) const IGNORED_SIGNALS: &[i32] = &[
    SIGWINCH,
    SIGALRM,
    SIGVTALRM,
    SIGPROF,
    SIGIO,
    libc::SIGPWR,
    SIGXCPU,
];

/// One line for a signal the master does not act on, saying what to send instead.
pub(super) fn log_ignored(signal: i32) {
    let name = signal_hook::low_level::signal_name(signal).unwrap_or("signal");
    match signal {
        SIGWINCH => log::warn!(
            "SIGWINCH ignored: workers are not stopped by WINCH here; TTOU removes one, TERM stops the server"
        ),
        _ => log::warn!("{name} ignored: the master acts on HUP, TERM, INT, QUIT, TTIN, TTOU, USR1 and USR2"),
    }
}

/// The event a signal to the master stands for.
pub(super) fn event_for_signal(signal: i32) -> Option<Event> {
    Some(match signal {
        SIGHUP => Event::SwapAsked(SwapCause::Hup),
        SIGTERM => Event::GracefulStop { signal: "SIGTERM" },
        SIGINT => Event::GracefulStop { signal: "SIGINT" },
        SIGQUIT => Event::ImmediateStop,
        SIGTTIN => Event::MoreWorkers,
        SIGTTOU => Event::FewerWorkers,
        _ => return None,
    })
}
