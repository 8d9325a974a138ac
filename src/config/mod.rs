//! Where the serve options come from besides the command line, and how the sources combine:
//! each option takes its flag, else its `WEBSERVER_*` variable (clap's `env`), else its key in
//! the `--config` TOML file, else its default.
//!
//! The command line is parsed twice. A lenient first look finds `--config` (or
//! `WEBSERVER_CONFIG`) and which options the command line and the environment already set. The
//! file's values for the other options go in front of the command line as flags, so they obey
//! (and satisfy) the rules between options as typed flags would; every file value is also its
//! option's default, which is how the app (a positional) comes from the file. The second parse
//! is the real one, each value checked by its option's own parser: flag > env > file (the
//! first look) > default (clap). The
//! file's keys are found in the clap definition, so options added later need no code here (only
//! `app`, `app-args` and the config options themselves are named), and the process environment,
//! which workers and apps inherit, is left as it was. `--print-config` tells a file value from a
//! typed flag or a default by the ids the file set.

mod file;
mod print;

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use clap::builder::Resettable;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::Cli;
use crate::supervisor::args::ServeArgs;
use crate::supervisor::effective::EffectiveConfig;

pub use file::ConfigFileError;

/// Why the command line cannot be used. Either way it is a usage error.
#[derive(Debug)]
pub enum CommandLineError {
    /// clap refused the arguments, or was asked for `--help`/`--version` (print it with
    /// [`clap::Error::print`]; its exit code says which).
    Usage(clap::Error),
    /// The `--config` file cannot be read or has a value no option accepts.
    Config(ConfigFileError),
}

impl fmt::Display for CommandLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandLineError::Usage(e) => write!(f, "{e}"),
            CommandLineError::Config(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CommandLineError {}

impl From<clap::Error> for CommandLineError {
    fn from(e: clap::Error) -> Self {
        CommandLineError::Usage(e)
    }
}

impl From<ConfigFileError> for CommandLineError {
    fn from(e: ConfigFileError) -> Self {
        CommandLineError::Config(e)
    }
}

impl Cli {
    /// This process's command line, with `WEBSERVER_*` variables and the `--config` file.
    pub fn from_all_sources() -> Result<Cli, CommandLineError> {
        parse(std::env::args_os())
    }
}

/// `args` (program name first) with the environment and the `--config` file.
pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, CommandLineError> {
    let args: Vec<OsString> = args.into_iter().collect();
    parse_sources(&args).map_err(|e| match e {
        CommandLineError::Usage(e) => {
            CommandLineError::Usage(crate::cli::habits::explain(e, &args))
        }
        other => other,
    })
}

/// A swap's re-read of the master's command line (`crate::supervisor::reread::Reparse`): the
/// serve options and their description, or why they no longer parse.
pub(crate) fn reparse(argv: &[OsString]) -> Result<(ServeArgs, Option<EffectiveConfig>), String> {
    let cli = parse(argv.iter().cloned()).map_err(|e| e.to_string())?;
    Ok((cli.serve, cli.effective))
}

fn parse_sources(args: &[OsString]) -> Result<Cli, CommandLineError> {
    let mut cmd = Cli::command();
    let Some((first, Some(path))) = first_look(args) else {
        // No file: the command line and the environment as they are.
        let matches = cmd.try_get_matches_from_mut(args)?;
        return finish(&cmd, &matches, None);
    };
    let mut built = cmd.clone();
    built.build();
    let app_on_command_line = first.value_source("app") == Some(ValueSource::CommandLine);
    let mut file = file::read(&path, &built, app_on_command_line)?;
    // In place (`mut_arg` would move the option to the end: another --help order, and another
    // position for a positional argument).
    cmd = cmd.mut_args(
        |arg| match file.values.iter().find(|(id, _)| id == arg.get_id()) {
            // An option the file sets is no longer missing (the app, for one).
            Some((_, words)) => arg
                .default_values(words.clone())
                .required(false)
                .required_unless_present(Resettable::Reset),
            None => arg,
        },
    );
    let (flags, flagged) = file.as_flags(&built, &first);
    file.flagged = flagged;
    let with_flags: Vec<OsString> = args
        .iter()
        .take(1)
        .chain(&flags)
        .chain(args.iter().skip(1))
        .cloned()
        .collect();
    let mut parsing = cmd.clone();
    match parsing.try_get_matches_from_mut(&with_flags) {
        Ok(matches) => finish(&parsing, &matches, Some(&file)),
        Err(e) if e.use_stderr() => match cmd.try_get_matches_from(args) {
            // Refused only with the file's values as flags (a rule between options): the
            // file's mistake, said as such.
            Ok(_) => Err(file.rule_error(&e).into()),
            // The command line's own mistake: said without the file's flags in its usage line.
            Err(own) => Err(own.into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// The parsed command line, and what `--print-config` prints: also for a serving master, whose
/// stats socket shows it (`GET /config`).
fn finish(
    cmd: &clap::Command,
    matches: &ArgMatches,
    file: Option<&file::FileSettings>,
) -> Result<Cli, CommandLineError> {
    let mut cli = Cli::from_arg_matches(matches)?;
    if cli.command.is_none() {
        cli.effective = Some(print::describe(cmd, matches, file));
    }
    Ok(cli)
}

/// A first, lenient parse: what the command line and the environment already set, and the
/// config file to read. `None` for a subcommand (`check`, a worker: they take no config file)
/// or a command line clap refuses outright (the real parse says why).
fn first_look(args: &[OsString]) -> Option<(ArgMatches, Option<PathBuf>)> {
    let matches: ArgMatches = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .ok()?;
    if matches.subcommand_name().is_some() {
        return None;
    }
    let config = matches.get_one::<PathBuf>("config").cloned();
    Some((matches, config))
}
