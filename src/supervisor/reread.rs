//! A swap re-reads `--config` (issue 23, item 5): the master parses its own command line again —
//! same arguments, the environment it was started with, the file as it is now — and the new
//! generation runs with what it finds. Options that need new listeners or the master's own
//! machinery stay as started (`RESTART_ONLY`), named in one log line when the file changed them;
//! a file that no longer parses fails the swap and the running generation keeps serving. What is
//! in force is described as `--print-config` would print it, with the kept options as they run
//! (the stats socket's `GET /config`).

use std::ffi::OsString;
use std::fmt::Debug;

use clap::{Args, Command};

use super::args::ServeArgs;
use super::effective::EffectiveConfig;
use crate::listen::args::ListenArgs;

/// The options a running master cannot change, as `--config` keys, with how to read each from
/// `ServeArgs` (compared by their `Debug` text: every option's value type has one).
type Field = (&'static str, fn(&ServeArgs) -> String);

fn text(value: &impl Debug) -> String {
    format!("{value:?}")
}

const RESTART_ONLY: &[Field] = &[
    // Listeners are opened once; workers inherit them.
    ("bind (and the other listener options)", |a| text(&a.listen)),
    ("proxy-protocol", |a| text(&a.tuning.proxy.proxy_protocol)),
    ("stats", |a| text(&a.stats)),
    ("pid", |a| text(&a.pid)),
    ("reload", |a| text(&a.reload)),
    ("reload-path", |a| text(&a.reload_paths)),
    // The master's own clocks: its liveness checks and stop deadlines (TTIN/TTOU change -w).
    ("workers", |a| text(&a.workers)),
    ("timeout", |a| text(&a.tuning.timeout)),
    ("graceful-timeout", |a| text(&a.tuning.graceful_timeout)),
    ("upgrade-timeout", |a| text(&a.upgrade.upgrade_timeout)),
];

/// The `--config` keys of a `RESTART_ONLY` entry.
fn keys(name: &str) -> Vec<String> {
    match name.split_once(' ') {
        // Every listener option.
        Some(_) => ListenArgs::augment_args(Command::new("listen"))
            .get_arguments()
            .filter_map(|arg| arg.get_long().map(str::to_owned))
            .collect(),
        None => vec![name.to_owned()],
    }
}

/// How a swap parses the master's command line again, with the environment and the `--config`
/// file as they are now: the serve options and their description, or why they no longer parse.
/// `crate::config` gives it to the master (the command line is parsed above this layer).
pub(crate) type Reparse = fn(&[OsString]) -> Result<(ServeArgs, Option<EffectiveConfig>), String>;

/// The settings for a new generation: `argv` parsed again by `reparse`, with `RESTART_ONLY`
/// taken from `running`, and their description (`running_text` is the running generation's).
/// The error is one line, for the swap's failure.
pub(crate) fn reread(
    argv: &[OsString],
    reparse: Reparse,
    running: &ServeArgs,
    running_text: Option<&EffectiveConfig>,
) -> Result<(ServeArgs, Option<EffectiveConfig>), String> {
    let (mut fresh, effective) = reparse(argv).map_err(|message| {
        let message = message.trim().replace(['\n', '\r'], " ");
        format!("--config no longer applies: {message}")
    })?;
    let changed: Vec<&str> = RESTART_ONLY
        .iter()
        .filter(|(_, read)| read(&fresh) != read(running))
        .map(|(name, _)| *name)
        .collect();
    let kept: Vec<String> = changed.iter().flat_map(|name| keys(name)).collect();
    let text = match (effective, running_text) {
        (Some(text), Some(running)) => Some(text.keeping(running, &kept)),
        (text, _) => text,
    };
    if !changed.is_empty() {
        log::warn!(
            "--config: {} changed; that needs a restart, the new generation keeps the values the master started with",
            changed.join(", ")
        );
    }
    fresh.listen = running.listen.clone();
    fresh.tuning.proxy.proxy_protocol = running.tuning.proxy.proxy_protocol;
    fresh.stats = running.stats.clone();
    fresh.pid.clone_from(&running.pid);
    fresh.reload = running.reload;
    fresh.reload_paths.clone_from(&running.reload_paths);
    fresh.workers = running.workers;
    fresh.tuning.timeout = running.tuning.timeout;
    fresh.tuning.graceful_timeout = running.tuning.graceful_timeout;
    fresh.upgrade.upgrade_timeout = running.upgrade.upgrade_timeout;
    Ok((fresh, text))
}
