//! The command line: `webserver [OPTIONS] LIB:SYMBOL [APP_ARGS]...`, `webserver check [OPTIONS]
//! LIB:SYMBOL [APP_ARGS]...`, the app author's subcommands (`new`, `header`, `completions`,
//! `man`), and the hidden modes the master starts its workers in (`__worker`) and `check` its
//! child (`__probe`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::app::target::AppTarget;
use crate::http::scan::Limits;
use crate::listen::args::ListenArgs;
use crate::listen::ListenerOptions;
use crate::scaffold::Lang;
use crate::server::Config;
use crate::supervisor::probe::{Expect, ProbeTarget};

/// Serve a web app from a shared library: WSGI's idea (any app on any server) for native code.
///
/// LIB:SYMBOL names a library and the app descriptor it exports. LIB with a '/' or a '.so' suffix
/// is a path relative to the current directory; a bare NAME means libNAME.so in the current
/// directory, then beside this executable. Examples: hello:app, ./libpyramidish.so:app.
/// Words after LIB:SYMBOL are the app's own arguments (ws_init.args, ABI 1.1), e.g.
/// `webserver myapp:app --config app.toml` (options for webserver go before LIB:SYMBOL).
///
/// Signals to the master: HUP hot-swaps the app library (a failed swap keeps the old one
/// serving), TERM/INT stop gracefully, QUIT stops at once, TTIN/TTOU add/remove a worker.
#[derive(Parser, Debug)]
#[command(
    name = "webserver",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    #[command(flatten)]
    pub(crate) serve: ServeArgs,
}

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
    /// Create a ready-to-build app in the directory NAME: a Rust cdylib with app-abi vendored (it
    /// builds offline, anywhere), or a C99 file, the header and a Makefile.
    New {
        /// The app's name: its directory, crate and library (`libNAME.so`).
        name: String,
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
    Worker(WorkerArgs),
}

/// What `check` asks the app, and which answers pass.
#[derive(Args, Debug, Clone)]
pub(crate) struct ProbeArgs {
    /// The path (and optional ?query) the check requests, e.g. /healthz.
    #[arg(long, value_name = "PATH", default_value = "/")]
    pub(crate) probe: ProbeTarget,

    /// Statuses that pass, comma-separated codes or classes: 200, 200,204, 2xx (default: any
    /// status below 500).
    #[arg(long, value_name = "STATUSES")]
    pub(crate) expect: Option<Expect>,
}

/// Options of a serving master.
#[derive(Args, Debug, Clone)]
pub(crate) struct ServeArgs {
    /// The app to serve, as LIB:SYMBOL (split at the last ':').
    // Checked here: with APP_ARGS after it, a stray word would otherwise be taken for the app.
    #[arg(value_name = "LIB:SYMBOL", required = true, value_parser = lib_symbol)]
    pub(crate) app: Option<String>,

    /// The app's own arguments: every word after LIB:SYMBOL reaches the app's init (and each
    /// worker's, in hot swaps too).
    #[arg(
        value_name = "APP_ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub(crate) app_args: Vec<OsString>,

    #[command(flatten)]
    pub(crate) listen: ListenArgs,

    /// Worker processes; the master only supervises and never loads app code.
    #[arg(short, long, value_name = "N", default_value_t = 1)]
    pub(crate) workers: usize,

    /// Write the master's pid to FILE (and the swap status to FILE.status); FILE stays locked
    /// (flock) while the master runs, so a second master with the same FILE is refused.
    #[arg(long, value_name = "FILE")]
    pub(crate) pid: Option<PathBuf>,

    /// Watch LIB's file and hot-swap when it changed and has been stable for a moment.
    #[arg(long)]
    pub(crate) reload: bool,

    /// With --reload, also hot-swap when a file under PATH changes (repeatable; directories are
    /// watched recursively, without hidden entries and __pycache__): e.g. a Python app's source.
    #[arg(long = "reload-path", value_name = "PATH", requires = "reload")]
    pub(crate) reload_paths: Vec<PathBuf>,

    #[command(flatten)]
    pub(crate) tuning: Tuning,

    #[command(flatten)]
    pub(crate) tls: crate::tls::TlsArgs,

    #[command(flatten)]
    pub(crate) stats: crate::stats::StatsArgs,
}

/// Options that each worker applies (the master passes them on).
#[derive(Args, Debug, Clone)]
pub(crate) struct Tuning {
    /// Serving threads per worker (default: one per CPU this process may run on; raise it for
    /// apps that block, e.g. on a database, since a blocking call holds its thread).
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,

    /// Seconds an idle keep-alive connection is kept open.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub(crate) keep_alive: u64,

    /// Seconds a client may take to send a request head (answered with 408 after that).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub(crate) header_timeout: u64,

    /// Seconds one request may run in the app (waits for the client do not count); a worker
    /// stuck longer is killed and replaced (harakiri).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub(crate) timeout: u64,

    /// Seconds one read of the request body or one write of the response may wait for the client.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub(crate) io_timeout: u64,

    /// Seconds one request may wait for its body in total, however slowly it trickles in
    /// (answered with 408 after that).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub(crate) body_timeout: u64,

    /// Seconds in-flight requests may take to finish on stop or swap.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub(crate) graceful_timeout: u64,

    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024)]
    pub(crate) max_body: u64,

    /// Recycle a worker after this many requests (0: never).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) max_requests: u64,

    /// Add up to this many requests, at random per worker, to --max-requests (so workers do not
    /// all recycle at once).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) max_requests_jitter: u64,
}

/// A worker's view: where its listeners and ready pipe are, and what to load.
#[derive(Args, Debug, Clone)]
pub(crate) struct WorkerArgs {
    /// One listener's options (`plain`, `tls`, `proxy`, `tls,proxy`), repeated in the order of
    /// the listening sockets at `FIRST_LISTEN_FD`, `FIRST_LISTEN_FD + 1`, ...
    #[arg(long = "listener", value_name = "OPTIONS")]
    pub(crate) listeners: Vec<ListenerOptions>,
    /// The library to load: the descriptor the master handed down (`/proc/self/fd/N`).
    #[arg(long)]
    pub(crate) lib: PathBuf,
    #[arg(long)]
    pub(crate) symbol: String,
    /// One app argument (repeated, in order).
    #[arg(long = "app-arg", value_name = "WORD", allow_hyphen_values = true)]
    pub(crate) app_args: Vec<OsString>,
    #[arg(long)]
    pub(crate) generation: u64,
    /// Other workers serve the same app (`webserver.multiprocess`).
    #[arg(long)]
    pub(crate) multiprocess: bool,
    /// Serve TLS with the certificate and key the master handed down (`crate::tls::TLS_FD`).
    #[arg(long)]
    pub(crate) tls: bool,
    #[command(flatten)]
    pub(crate) tuning: Tuning,
    #[command(flatten)]
    pub(crate) stats: crate::stats::WorkerStatsArgs,
}

/// A `LIB:SYMBOL` argument, refused as a usage error when it has no `:` between two parts.
fn lib_symbol(arg: &str) -> Result<String, String> {
    AppTarget::parse(arg)
        .map(|_| arg.to_owned())
        .map_err(|e| e.to_string())
}

impl Tuning {
    pub(crate) fn server_config(&self, multiprocess: bool) -> Config {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Config {
            // One per CPU (available_parallelism follows the affinity mask): more runnable
            // threads than CPUs cost fast apps a scheduler time slice of tail latency (measured:
            // p99 0.35 ms with 1 thread on 1 CPU, 3.6 ms with 2, 13 ms with 4). Apps that block
            // need more, and say so with --threads.
            threads: self.threads.unwrap_or(cpus).max(1),
            keep_alive: Duration::from_secs(self.keep_alive),
            header_timeout: Duration::from_secs(self.header_timeout.max(1)),
            io_timeout: Duration::from_secs(self.io_timeout.max(1)),
            body_timeout: Duration::from_secs(self.body_timeout.max(1)),
            request_timeout: (self.timeout > 0).then(|| Duration::from_secs(self.timeout)),
            graceful_timeout: Duration::from_secs(self.graceful_timeout),
            max_body: self.max_body,
            max_requests: (self.max_requests > 0).then_some(self.max_requests),
            limits: Limits::default(),
            multiprocess,
            // The worker adds it from the copy the master handed down.
            tls: None,
        }
    }

    /// The same options as command-line arguments, for a worker's command line.
    pub(crate) fn to_args(&self, max_requests: u64) -> Vec<String> {
        let mut args = vec![
            format!("--keep-alive={}", self.keep_alive),
            format!("--header-timeout={}", self.header_timeout),
            format!("--timeout={}", self.timeout),
            format!("--io-timeout={}", self.io_timeout),
            format!("--body-timeout={}", self.body_timeout),
            format!("--graceful-timeout={}", self.graceful_timeout),
            format!("--max-body={}", self.max_body),
            format!("--max-requests={max_requests}"),
        ];
        if let Some(threads) = self.threads {
            args.push(format!("--threads={threads}"));
        }
        args
    }
}
