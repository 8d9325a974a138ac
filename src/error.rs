//! Why `webserver::run` failed: one variant per layer, each carrying that layer's own typed
//! error, whose message says what to do. `main` prints it (the only place that prints a final
//! error line) and exits with [`crate::exit::FAILURE`].

use std::fmt;

use crate::logging::LogSetupError;
use crate::scaffold::ScaffoldError;
use crate::supervisor::master::MasterError;
use crate::supervisor::probe::CheckError;

/// The error `run` returns. Opaque: callers need only its message, [`Error::already_reported`]
/// and the fact that it failed.
#[derive(Debug)]
pub struct Error {
    layer: Layer,
}

/// One variant per layer that can end a process unsuccessfully.
#[derive(Debug)]
pub(crate) enum Layer {
    /// The master could not start serving.
    Master(MasterError),
    /// `check` and its `__probe` child: the app failed the check (or could not be loaded), or
    /// the check could not run.
    Check(CheckError),
    /// `new` could not write the app.
    Scaffold(ScaffoldError),
    /// A log file named on the command line cannot be opened.
    Logging(LogSetupError),
    /// Writing to stdout failed (`header`, `completions`, `man` into a closed pipe or full disk).
    Output(std::io::Error),
    /// A worker ended unsuccessfully with this status. It told the master why over its pipe
    /// (the master logs it), so nothing more is printed.
    Worker { status: i32 },
}

impl Error {
    pub(crate) fn worker(status: i32) -> Error {
        Error {
            layer: Layer::Worker { status },
        }
    }

    /// True when the one line that says why was already written by another process: the
    /// `__probe` child of `check`, or a worker through the master. `main` then prints nothing,
    /// so exactly one error line reaches the user.
    pub fn already_reported(&self) -> bool {
        match &self.layer {
            Layer::Worker { .. } => true,
            Layer::Check(e) => e.already_reported(),
            Layer::Master(_) | Layer::Scaffold(_) | Layer::Logging(_) | Layer::Output(_) => false,
        }
    }
}

impl From<MasterError> for Error {
    fn from(e: MasterError) -> Error {
        Error {
            layer: Layer::Master(e),
        }
    }
}

impl From<LogSetupError> for Error {
    fn from(e: LogSetupError) -> Error {
        Error {
            layer: Layer::Logging(e),
        }
    }
}

impl From<ScaffoldError> for Error {
    fn from(e: ScaffoldError) -> Error {
        Error {
            layer: Layer::Scaffold(e),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error {
            layer: Layer::Output(e),
        }
    }
}

impl From<CheckError> for Error {
    fn from(e: CheckError) -> Error {
        Error {
            layer: Layer::Check(e),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.layer {
            Layer::Master(e) => write!(f, "{e}"),
            Layer::Check(e) => write!(f, "{e}"),
            Layer::Scaffold(e) => write!(f, "{e}"),
            Layer::Logging(e) => write!(f, "{e}"),
            Layer::Output(e) => write!(f, "cannot write to stdout: {e}"),
            Layer::Worker { status } => write!(
                f,
                "worker exited with status {status}; the master's log says why"
            ),
        }
    }
}

impl std::error::Error for Error {}
