//! The exit statuses of every webserver process (master, worker, `check` and its `__probe`
//! child), in one place, so that a status one process sets and another reads means one thing.

/// Everything went as asked.
pub const SUCCESS: u8 = 0;

/// Failed, and said why in exactly one `webserver: error: ` line on stderr (`main` prints it;
/// a worker says it to the master over its pipe instead). `check` relies on this: a `__probe`
/// child that exits with it has already told the user, so the parent adds no second line.
pub const FAILURE: u8 = 1;

/// The command line was wrong: a flag or `WEBSERVER_*` value (clap printed the usage and chose
/// this status), or the `--config` file (`main` printed one line). Listed so that no other
/// meaning takes it.
pub const USAGE: u8 = 2;

/// A worker killed itself over a request that ran past `--timeout` (harakiri); the master
/// recognises it and logs why the worker is replaced. 70 is `EX_SOFTWARE` in sysexits.h.
pub(crate) const HARAKIRI: u8 = 70;
