//! `--print-config`: every option's effective value and where it came from, printed as a TOML
//! config file (grouped under the `--help` headings) so that it can be read back with
//! `--config`. Like the file, it is generic over the clap definition.

use std::ffi::OsStr;
use std::fmt::Write as _;

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command};

use super::file::{is_switch, keyed_args, takes_many, FileSettings};
use crate::supervisor::effective::EffectiveConfig;

/// Heading of the options `--help` lists without one.
const NO_HEADING: &str = "Options";
/// Heading of the positional arguments (the app and its arguments).
const APP_HEADING: &str = "App";
/// Where the `# source` comments start, unless a setting is longer.
const COMMENT_COLUMN: usize = 40;

/// Describes the parse `matches` of `cmd`, whose defaults include `file`'s values.
pub(crate) fn describe(
    cmd: &Command,
    matches: &ArgMatches,
    file: Option<&FileSettings>,
) -> EffectiveConfig {
    let mut out = String::from(
        "# webserver --print-config: each option's effective value and where it came from \
         (flag, env, file or default).\n# This is a valid --config file.\n",
    );
    if let Some(file) = file {
        let source = source_of(cmd, matches, "config", None);
        let _ = writeln!(out, "# config file: {} ({source})", file.path.display());
    }
    let mut sections: Vec<(&str, Vec<String>)> = Vec::new();
    for (key, arg) in keyed_args(cmd) {
        let heading = arg.get_help_heading().unwrap_or(if arg.is_positional() {
            APP_HEADING
        } else {
            NO_HEADING
        });
        let line = setting_line(&key, arg, matches, cmd, file);
        match sections.iter_mut().find(|(h, _)| *h == heading) {
            Some((_, lines)) => lines.push(line),
            None => sections.push((heading, vec![line])),
        }
    }
    for (heading, lines) in sections {
        let _ = write!(out, "\n# {heading}\n");
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
    }
    EffectiveConfig::from_text(out)
}

/// What an option left empty means when the server starts, for the options whose default is
/// decided then rather than by clap (an empty `bind` is not "no listener").
fn started_with(id: &str) -> Option<&'static str> {
    match id {
        "bind" => Some(crate::listen::args::DEFAULT_BIND_MEANING),
        _ => None,
    }
}

/// `key = value  # source`, or a comment when the option has no value at all.
fn setting_line(
    key: &str,
    arg: &Arg,
    matches: &ArgMatches,
    cmd: &Command,
    file: Option<&FileSettings>,
) -> String {
    let id = arg.get_id().as_str();
    let source = source_of(cmd, matches, id, file);
    let words: Option<Vec<&OsStr>> = matches.get_raw(id).map(Iterator::collect);
    let setting = match words {
        None if takes_many(arg) => match started_with(id) {
            Some(meaning) => {
                return format!(
                    "{:<COMMENT_COLUMN$}  # {source}: {meaning}",
                    format!("{key} = []")
                )
            }
            None => format!("{key} = []"),
        },
        None => format!("# {key} is not set"),
        Some(words) if takes_many(arg) => {
            let items: Vec<String> = words.iter().map(|w| toml_word(w)).collect();
            format!("{key} = [{}]", items.join(", "))
        }
        Some(words) if is_switch(arg) => {
            // The parsed value: the word may be any of the parser's spellings (`yes`, `1`).
            let on = match matches.try_get_one::<bool>(id) {
                Ok(Some(on)) => *on,
                _ => words.last().is_some_and(|w| *w == "true"),
            };
            format!("{key} = {on}")
        }
        Some(words) => {
            let last = words.last().map_or_else(String::new, |w| toml_word(w));
            format!("{key} = {last}")
        }
    };
    format!("{setting:<COMMENT_COLUMN$}  # {source}")
}

/// Where `id`'s value came from: `flag`, `env NAME`, `file PATH` or `default`.
fn source_of(cmd: &Command, matches: &ArgMatches, id: &str, file: Option<&FileSettings>) -> String {
    let arg = cmd.get_arguments().find(|arg| arg.get_id() == id);
    let source = matches.value_source(id);
    if let (Some(file), Some(arg)) = (file, arg) {
        if file.sets(arg.get_id(), source) {
            return format!("file {}", file.path.display());
        }
    }
    match source {
        Some(ValueSource::CommandLine) if arg.is_some_and(Arg::is_positional) => {
            "command line".to_owned()
        }
        Some(ValueSource::CommandLine) => "flag".to_owned(),
        Some(ValueSource::EnvVariable) => {
            let name = arg.and_then(Arg::get_env).unwrap_or_default();
            format!("env {}", name.to_string_lossy())
        }
        Some(ValueSource::DefaultValue) | None => "default".to_owned(),
        Some(_) => "unknown".to_owned(),
    }
}

/// A value as TOML: a whole number bare (as the file accepts it), anything else quoted.
fn toml_word(word: &OsStr) -> String {
    let text = word.to_string_lossy();
    match text.parse::<i64>() {
        Ok(n) if n.to_string() == text => text.into_owned(),
        _ => toml::Value::String(text.into_owned()).to_string(),
    }
}
