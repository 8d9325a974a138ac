//! Where the serve options come from besides the command line, and how the sources combine:
//! each option takes its flag, else its `WEBSERVER_*` variable (clap's `env`), else its key in
//! the `--config` TOML file, else its default.
//!
//! The command line is parsed twice. A lenient first look finds `--config` (or
//! `WEBSERVER_CONFIG`) and whether the command line names the app; the file's values then become
//! those options' defaults, and the second parse is the real one. So clap itself applies
//! flag > env > file > default with each option's own parser; the file's keys are found in the
//! clap definition, so options added later need no code here (only `app`, `app-args` and the
//! config options themselves are named); and the process environment, which workers and apps
//! inherit, is left as it was. A file value is told apart from a default, for
//! `--print-config`, by the ids the file set.

mod file;
mod print;
pub(crate) mod values;

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use clap::builder::Resettable;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::Cli;

pub use file::ConfigFileError;
pub(crate) use print::EffectiveConfig;

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
    let mut cmd = Cli::command();
    let file = match first_look(&args) {
        Some(FirstLook {
            config: Some(path),
            app_on_command_line,
        }) => {
            let mut built = cmd.clone();
            built.build();
            let file = file::read(&path, &built, app_on_command_line)?;
            // In place (`mut_arg` would move the option to the end: another --help order, and
            // another position for a positional argument).
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
            Some(file)
        }
        _ => None,
    };
    let matches = cmd.try_get_matches_from_mut(&args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if cli.command.is_none() && cli.serve.print_config {
        cli.effective = Some(EffectiveConfig::new(&cmd, &matches, file.as_ref()));
    }
    Ok(cli)
}

/// What the first, lenient parse tells about the serving command line.
struct FirstLook {
    config: Option<PathBuf>,
    app_on_command_line: bool,
}

/// `None` for a subcommand (`check`, a worker: they take no config file) or a command line clap
/// refuses outright (the real parse says why).
fn first_look(args: &[OsString]) -> Option<FirstLook> {
    let matches: ArgMatches = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .ok()?;
    if matches.subcommand_name().is_some() {
        return None;
    }
    Some(FirstLook {
        config: matches.get_one::<PathBuf>("config").cloned(),
        app_on_command_line: matches.value_source("app") == Some(ValueSource::CommandLine),
    })
}
