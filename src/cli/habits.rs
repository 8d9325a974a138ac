//! The listening flags of other servers (gunicorn's and uvicorn's `--host`/`--port`/`--uds`,
//! uvicorn's `--fd`, waitress's `--listen`/`--unix-socket`): refused like any unknown flag, but
//! with the `-b` that says the same here instead of clap's tip to pass the flag as a value (`use
//! -- --port`), which only a flag meant for the app needs.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::CommandFactory;

use crate::cli::Cli;
use crate::listen::args::DEFAULT_BIND;

/// The flags recognised, as other servers spell them.
const HOST: &str = "--host";
const PORT: &str = "--port";
const LISTEN: &str = "--listen";
const SOCKET_FLAGS: [&str; 2] = ["--uds", "--unix-socket"];
const FD: &str = "--fd";

/// `err` itself, or, when it refuses one of those flags, the same usage error saying which `-b`
/// to write instead (worked out from every such flag on the command line).
pub(crate) fn explain(err: clap::Error, args: &[OsString]) -> clap::Error {
    if err.kind() != ErrorKind::UnknownArgument {
        return err;
    }
    let Some(ContextValue::String(invalid)) = err.get(ContextKind::InvalidArg) else {
        return err;
    };
    let flag = invalid.split_once('=').map_or(invalid.as_str(), |(f, _)| f);
    if ![HOST, PORT, LISTEN, FD].contains(&flag) && !SOCKET_FLAGS.contains(&flag) {
        return err;
    }
    let bind = bind_for(args);
    Cli::command().error(
        ErrorKind::UnknownArgument,
        format!(
            "'{flag}' is not a webserver option; say where to listen with -b (--bind): -b {bind} \
             (before LIB:SYMBOL; repeat -b for more listeners)"
        ),
    )
}

/// The `-b` value the other servers' flags in `args` mean.
fn bind_for(args: &[OsString]) -> String {
    let value = |name: &str| flag_value(args, name);
    if let Some(path) = SOCKET_FLAGS.iter().find_map(|f| value(f)) {
        return format!("unix:{path}");
    }
    if let Some(fd) = value(FD) {
        return format!("fd://{fd}");
    }
    if let Some(listen) = value(LISTEN) {
        return listen;
    }
    let (default_host, default_port) = DEFAULT_BIND.rsplit_once(':').unwrap_or((DEFAULT_BIND, ""));
    let host = value(HOST).unwrap_or_else(|| default_host.to_owned());
    let port = value(PORT).unwrap_or_else(|| default_port.to_owned());
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The last value given to `name`, as `name=VALUE` or `name VALUE`.
fn flag_value(args: &[OsString], name: &str) -> Option<String> {
    let mut found = None;
    let mut words = args.iter().map(|w| w.to_string_lossy());
    while let Some(word) = words.next() {
        if word == name {
            found = words.next().map(|v| v.into_owned());
        } else if let Some(v) = word.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            found = Some(v.to_owned());
        }
    }
    found
}
