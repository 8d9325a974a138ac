//! The state machine's vocabulary: what happens to the master ([`Event`]) and what it must do
//! about it ([`Action`]).

use crate::supervisor::artifact::Artifact;
use crate::supervisor::message::WorkerMessage;
use crate::sys::process::{ChildExit, Signal};

/// What asked for a swap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SwapCause {
    Hup,
    /// `--reload` saw the library change.
    FileChanged,
    /// `--reload-path` saw a file under a watched path change (the master says which path).
    PathChanged,
}

/// Something that happened to the master.
#[derive(Clone, Debug)]
pub(crate) enum Event {
    /// Boot the first generation.
    Start,
    SwapAsked(SwapCause),
    /// TERM or INT (named for the log): no new connections, in-flight requests finish.
    GracefulStop {
        signal: &'static str,
    },
    /// QUIT.
    ImmediateStop,
    /// TTIN.
    MoreWorkers,
    /// TTOU.
    FewerWorkers,
    /// The answer to [`Action::PrepareLibrary`]: the library in memory, or why there is none.
    Prepared(Result<Artifact, String>),
    /// The answer to [`Action::Spawn`]: the worker's pid, or why it could not start.
    Spawned {
        generation: u64,
        pid: Result<i32, String>,
    },
    Message {
        pid: i32,
        message: WorkerMessage,
    },
    Exited {
        pid: i32,
        how: ChildExit,
    },
    /// The answer to [`Action::JudgeCanary`]: the figures, or the threshold that failed.
    CanaryVerdict {
        generation: u64,
        verdict: Result<String, String>,
    },
    /// Time passed (deadlines, back-off).
    Tick,
}

/// Something the master must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Read the live library for a new generation; answer with [`Event::Prepared`].
    PrepareLibrary,
    /// Start one worker of `generation` on `library`; answer with [`Event::Spawned`].
    Spawn {
        generation: u64,
        library: Artifact,
        multiprocess: bool,
    },
    Signal {
        pid: i32,
        signal: Signal,
    },
    /// Empty the generation's source pin (`source_pin.rs`): it has no worker left serving, and
    /// a replacement that loads the code on disk serves better than none.
    ResetSourcePin(Artifact),
    /// Write this line to `FILE.status` (`--pid FILE`).
    Status(String),
    Log {
        level: log::Level,
        text: String,
    },
    /// The first generation serves: say so on stdout.
    Serving,
    /// A stop began and no generation takes over: close the master's copy of the listening
    /// socket (the workers close theirs as they drain), so new clients are refused at once
    /// instead of waiting in the kernel's backlog for the whole drain.
    CloseListener,
    /// A canary's window starts: note every generation's durations now.
    CanaryStarted {
        generation: u64,
    },
    /// A canary's window is over: compare `generation` with `old` over it; answer with
    /// [`Event::CanaryVerdict`].
    JudgeCanary {
        generation: u64,
        old: u64,
    },
    /// The master is done: `Ok` after a stop, the reason when the first generation failed.
    Exit(Result<(), String>),
}
