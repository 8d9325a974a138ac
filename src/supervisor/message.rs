//! What a worker tells the master on its pipe, one message per line.
//!
//! A line is a keyword and tab-separated fields; inside a field, backslash, tab, newline and
//! carriage return are escaped (`\\`, `\t`, `\n`, `\r`), so any text survives one line.
//! [`WorkerMessage::encode`] and [`WorkerMessage::decode`] are the only code that knows the
//! format; [`Reporter`] is the worker's end of the pipe.
//!
//! Besides what happens to it, a worker says `alive` every [`heartbeat_interval`] for its whole
//! life (booting, serving, draining): the master kills a worker it has not heard from for
//! `--timeout` (a stopped or frozen process; see `generation/liveness.rs`).

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::time::Duration;

/// How many heartbeats a worker sends per `--timeout`: a few may be late (a loaded machine, a
/// master busy copying a library) before the master's patience runs out.
const HEARTBEATS_PER_TIMEOUT: u32 = 4;

/// How often a worker says `alive` when the master's patience is `timeout`.
pub(crate) fn heartbeat_interval(timeout: Duration) -> Duration {
    timeout / HEARTBEATS_PER_TIMEOUT
}

/// One message from a worker to the master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WorkerMessage {
    /// The app loaded, passed the ABI check and ran `init`; waiting for the go (SIGUSR1).
    Ready { name: String, version: String },
    /// The app could not be loaded or started; the worker exits.
    Error(String),
    /// Recycling on its own (`--max-requests`): the master starts a replacement now.
    Draining,
    /// After SIGTERM: the listener is closed, no new connection can reach this process.
    Stopped,
    /// The heartbeat: the process still runs.
    Alive,
}

/// A line that is not a [`WorkerMessage`] (kept whole, for the log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UnknownMessage(pub(crate) String);

impl fmt::Display for UnknownMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown message {:?}", self.0)
    }
}

const READY: &str = "ready";
const ERROR: &str = "error";
const DRAINING: &str = "draining";
const STOPPED: &str = "stopped";
const ALIVE: &str = "alive";
const SEPARATOR: char = '\t';
const ESCAPE: char = '\\';

impl WorkerMessage {
    /// The message as one line, newline included.
    pub(crate) fn encode(&self) -> String {
        let mut line = String::new();
        match self {
            WorkerMessage::Ready { name, version } => {
                line.push_str(READY);
                push_field(&mut line, name);
                push_field(&mut line, version);
            }
            WorkerMessage::Error(message) => {
                line.push_str(ERROR);
                push_field(&mut line, message);
            }
            WorkerMessage::Draining => line.push_str(DRAINING),
            WorkerMessage::Stopped => line.push_str(STOPPED),
            WorkerMessage::Alive => line.push_str(ALIVE),
        }
        line.push('\n');
        line
    }

    /// The message on one line (without its newline).
    pub(crate) fn decode(line: &str) -> Result<WorkerMessage, UnknownMessage> {
        let unknown = || UnknownMessage(line.to_owned());
        let mut parts = line.split(SEPARATOR);
        let keyword = parts.next().unwrap_or_default();
        let fields = parts.map(unescape).collect::<Option<Vec<_>>>();
        let message = match (keyword, fields.as_deref()) {
            (READY, Some([name, version])) => WorkerMessage::Ready {
                name: name.clone(),
                version: version.clone(),
            },
            (ERROR, Some([message])) => WorkerMessage::Error(message.clone()),
            (DRAINING, Some([])) => WorkerMessage::Draining,
            (STOPPED, Some([])) => WorkerMessage::Stopped,
            (ALIVE, Some([])) => WorkerMessage::Alive,
            _ => return Err(unknown()),
        };
        Ok(message)
    }
}

fn push_field(line: &mut String, field: &str) {
    line.push(SEPARATOR);
    for c in field.chars() {
        match c {
            ESCAPE => line.push_str("\\\\"),
            '\t' => line.push_str("\\t"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            c => line.push(c),
        }
    }
}

/// The field's text, or `None` for an escape this format does not write.
fn unescape(field: &str) -> Option<String> {
    let mut text = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != ESCAPE {
            text.push(c);
            continue;
        }
        text.push(match chars.next()? {
            ESCAPE => ESCAPE,
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            _ => return None,
        });
    }
    Some(text)
}

/// The worker's end of the pipe, shared by the threads that report (main, signals, retire hook).
pub(crate) struct Reporter {
    pipe: Mutex<File>,
}

impl Reporter {
    pub(crate) fn new(pipe: OwnedFd) -> Reporter {
        Reporter {
            pipe: Mutex::new(File::from(pipe)),
        }
    }

    /// Writes the message as one `write` (a line is far below the pipe's atomic size), so the
    /// master never sees two messages interleaved.
    pub(crate) fn send(&self, message: &WorkerMessage) -> io::Result<()> {
        let mut pipe = self.pipe.lock().unwrap_or_else(|e| e.into_inner());
        pipe.write_all(message.encode().as_bytes())
    }

    /// [`Reporter::send`] where nothing is left to do about a failure but say so: the master
    /// notices a worker it cannot hear from when the worker exits.
    pub(crate) fn send_or_log(&self, message: &WorkerMessage) {
        if let Err(e) = self.send(message) {
            log::warn!("cannot tell the master {message:?}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(name: &str, version: &str) -> WorkerMessage {
        WorkerMessage::Ready {
            name: name.into(),
            version: version.into(),
        }
    }

    #[test]
    fn every_message_survives_a_round_trip_as_one_line() {
        let cases = [
            ready("pyramidish", "1.0"),
            ready("", ""),
            ready("tab\there", "new\nline"),
            ready("back\\slash\\t", "\\"),
            WorkerMessage::Error("cannot load /x.so: invalid ELF header".into()),
            WorkerMessage::Error("two\nlines\r\nand\ta tab".into()),
            WorkerMessage::Error(String::new()),
            WorkerMessage::Draining,
            WorkerMessage::Stopped,
            WorkerMessage::Alive,
        ];
        for message in cases {
            let line = message.encode();
            let body = line.strip_suffix('\n').expect("ends with a newline");
            assert!(!body.contains('\n') && !body.contains('\r'), "{line:?}");
            assert_eq!(WorkerMessage::decode(body), Ok(message.clone()), "{line:?}");
        }
    }

    #[test]
    fn the_wire_format_is_the_documented_one() {
        assert_eq!(ready("a", "1").encode(), "ready\ta\t1\n");
        assert_eq!(
            WorkerMessage::Error("x\ty".into()).encode(),
            "error\tx\\ty\n"
        );
        assert_eq!(WorkerMessage::Draining.encode(), "draining\n");
        assert_eq!(WorkerMessage::Stopped.encode(), "stopped\n");
        assert_eq!(WorkerMessage::Alive.encode(), "alive\n");
    }

    #[test]
    fn unknown_lines_are_refused_whole() {
        for line in [
            "",
            "hello",
            "READY\ta\t1",
            "ready",
            "ready\tonly-name",
            "ready\ta\t1\textra",
            "error",
            "error\ta\tb",
            "stopped\t",
            "draining\tnow",
            "alive\t",
            "error\tbad escape \\q",
            "error\tdangling \\",
        ] {
            assert_eq!(
                WorkerMessage::decode(line),
                Err(UnknownMessage(line.to_owned())),
                "{line:?}"
            );
        }
    }
}
