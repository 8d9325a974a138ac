//! The command line: `webserver [OPTIONS] LIB:SYMBOL [APP_ARGS]...`, `webserver check [OPTIONS]
//! LIB:SYMBOL [APP_ARGS]...`, the app author's subcommands (`new`, `header`, `completions`,
//! `man`), and the hidden modes the master starts its workers in (`__worker`) and `check` its
//! child (`__probe`).
//!
//! The options are the layers' own clap groups (the serve options in `crate::supervisor::args`),
//! so nothing below this layer imports it; `crate::config` adds the environment and the file.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub(crate) mod habits;
pub(crate) mod manual;

use crate::scaffold::Lang;
use crate::supervisor::args::{ProbeArgs, ServeArgs, WorkerArgs};
use crate::supervisor::effective::EffectiveConfig;

/// Serve a web app from a shared library: WSGI's idea (any app on any server) for native code.
///
/// LIB:SYMBOL names a library and the app descriptor it exports. LIB with a '/' or a '.so' suffix
/// is a path relative to the current directory; a bare NAME means libNAME.so in the current
/// directory, then beside this executable. Examples: hello:app, ./libpyramidish.so:app.
/// Words after LIB:SYMBOL are the app's own arguments (ws_init.args, ABI 1.1), e.g.
/// `webserver myapp:app --config app.toml` (options for webserver go before LIB:SYMBOL: this
/// --config is the app's).
///
/// Signals to the master: HUP hot-swaps the app library, re-reading --config (a failed swap
/// keeps the old one serving; with --canary it is tried on a few workers first), TERM/INT stop
/// gracefully, QUIT stops at once, TTIN/TTOU add/remove a worker, USR1 reopens the log files
/// (logrotate), USR2 upgrades the server binary itself (the executable at the path this master
/// was started from takes over its sockets and --pid FILE, then this master drains and exits;
/// a new binary that fails leaves this one serving); WINCH is logged and ignored.
#[derive(Parser, Debug)]
#[command(
    name = "webserver",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_long_help = CONFIGURATION_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    #[command(flatten)]
    pub(crate) serve: ServeArgs,

    /// What `--print-config` prints, worked out while parsing (`crate::config`).
    #[arg(skip)]
    pub(crate) effective: Option<EffectiveConfig>,
}

/// The end of `--help`: where options come from besides the command line, and the logs.
const CONFIGURATION_HELP: &str = "\
Configuration:
  Every option can also be set in the environment as WEBSERVER_<OPTION> (shown as [env: ...]
  above, e.g. WEBSERVER_WORKERS=4, WEBSERVER_TIMEOUT=off) and in a TOML file named by
  --config FILE or WEBSERVER_CONFIG, whose keys are the long option names (kebab-case or
  snake_case) plus the app:
      app = \"hello:app\"
      app-args = [\"--verbose\"]
      bind = \"127.0.0.1:8000\"
      workers = 4
  A flag beats the environment, which beats the file, which beats the default.
  `webserver --print-config [OPTIONS]` prints each effective value and where it came from.

Logging:
  RUST_LOG chooses what is logged to stderr (default: info,access=warn; e.g. RUST_LOG=debug,
  or RUST_LOG=info to add the access log).";

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Load LIB:SYMBOL exactly as a worker would (in a child process), run init, one synthetic
    /// `GET PATH` (default `/`) and shutdown; print what was found and exit 0 if the app is
    /// healthy: its answer is one of --expect, or by default not a server error (5xx).
    Check {
        /// The app to check, as LIB:SYMBOL.
        #[arg(value_name = "LIB:SYMBOL")]
        app: String,
        #[command(flatten)]
        probe: ProbeArgs,
        /// The app's own arguments, passed to its init.
        #[arg(
            value_name = "APP_ARGS",
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        app_args: Vec<OsString>,
    },
    /// Create a ready-to-build app in the directory PATH: a Rust cdylib with app-abi vendored (it
    /// builds offline, anywhere), or a C99 file with a deferred route, the header and a Makefile.
    New {
        /// The app's directory, as for `cargo new`: its last component names the app (crate and
        /// library, `libNAME.so`); missing parent directories are created.
        path: PathBuf,
        /// The language to write the app in.
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
    },
    /// Print the C header apps are built against: `webserver header > webserver_app.h`.
    Header,
    /// Print a shell completion script, e.g. `webserver completions bash > /etc/bash_completion.d/webserver`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `webserver man > webserver.1; man ./webserver.1`.
    Man,
    /// Internal: the child process of `check`.
    #[command(name = "__probe", hide = true)]
    Probe {
        #[arg(value_name = "LIB:SYMBOL")]
        app: String,
        #[command(flatten)]
        probe: ProbeArgs,
        #[arg(
            value_name = "APP_ARGS",
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        app_args: Vec<OsString>,
    },
    /// Internal: a worker process, started by the master.
    #[command(name = "__worker", hide = true)]
    Worker(Box<WorkerArgs>),
}
