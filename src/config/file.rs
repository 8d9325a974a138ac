//! A `--config FILE`: one TOML table whose keys are the serve options' long names (kebab-case,
//! or snake_case), plus `app` (LIB:SYMBOL) and `app-args`. Keys are found in the clap
//! definition, so an option added later is a key with no code here. Each value is checked with
//! the option's own parser before anything runs, so the file's mistakes are refused with one line
//! that names the file, the key and what it expects.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::builder::ValueRange;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, Id};

/// The values a config file gives, one entry per option it sets, in the form clap parses.
#[derive(Debug)]
pub(crate) struct FileSettings {
    pub(crate) path: PathBuf,
    pub(crate) values: Vec<(Id, Vec<OsString>)>,
    /// The options whose values went in front of the command line as flags ([`Self::as_flags`]).
    pub(crate) flagged: Vec<Id>,
}

impl FileSettings {
    /// True when the file gave `id` the value it has: as a default, or as a flag it put in front.
    pub(crate) fn sets(&self, id: &Id, source: Option<ValueSource>) -> bool {
        match source {
            Some(ValueSource::CommandLine) => self.flagged.contains(id),
            Some(ValueSource::DefaultValue) => self.values.iter().any(|(set, _)| set == id),
            _ => false,
        }
    }

    /// The file's values as flags to put in front of the command line, for the options that
    /// `already` (the first look) has no flag or variable for; and the ids they set. As flags,
    /// not only defaults, they obey the rules between options (`requires`, `conflicts_with`),
    /// and satisfy them, as the same flags typed by hand would: clap applies no rule to a
    /// default. Positionals (the app) stay defaults.
    pub(crate) fn as_flags(&self, cmd: &Command, already: &ArgMatches) -> (Vec<OsString>, Vec<Id>) {
        let mut flags = Vec::new();
        let mut ids = Vec::new();
        for (id, words) in &self.values {
            let set_already = matches!(
                already.value_source(id.as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            );
            let arg = cmd.get_arguments().find(|arg| arg.get_id() == id);
            // Positionals have no long name and stay defaults.
            let Some((arg, long)) = arg.and_then(|arg| Some((arg, arg.get_long()?))) else {
                continue;
            };
            if set_already {
                continue;
            }
            let flag = || OsString::from(format!("--{long}"));
            match arg.get_action() {
                ArgAction::SetTrue | ArgAction::SetFalse => {
                    let on = words.last().is_some_and(|w| w == "true");
                    if on == matches!(arg.get_action(), ArgAction::SetTrue) {
                        flags.push(flag());
                    }
                }
                ArgAction::Count => {
                    let times = words.last().and_then(|w| w.to_str()?.parse().ok());
                    flags.extend(std::iter::repeat_with(flag).take(times.unwrap_or(0)));
                }
                _ => flags.extend(words.iter().map(|word| {
                    let mut token = OsString::from(format!("--{long}="));
                    token.push(word);
                    token
                })),
            }
            ids.push(id.clone());
        }
        (flags, ids)
    }

    /// A refusal caused by the file's values together (a rule between options), named as the
    /// file's.
    pub(crate) fn rule_error(&self, error: &clap::Error) -> ConfigFileError {
        ConfigFileError {
            path: self.path.clone(),
            problem: Problem::Rule(one_line(&error.to_string())),
        }
    }
}

/// The ids that have no key in the file: where the file is, and what to do with it.
const NOT_FROM_FILE: &[&str] = &["config", "print_config", "help", "version"];
/// The positional arguments' keys. `app-args` belongs to `app`: a LIB:SYMBOL on the command line
/// replaces both.
const APP: &str = "app";
const APP_ARGS: &str = "app_args";

/// Each option that a file (and `--print-config`) can name, with its key.
pub(crate) fn keyed_args(cmd: &Command) -> impl Iterator<Item = (String, &Arg)> {
    cmd.get_arguments()
        .filter(|arg| !arg.is_hide_set() && !NOT_FROM_FILE.contains(&arg.get_id().as_str()))
        .filter(|arg| {
            !matches!(
                arg.get_action(),
                ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
            )
        })
        .map(|arg| (key_of(arg), arg))
}

/// An option's key: its long name, or for a positional its id in kebab-case.
fn key_of(arg: &Arg) -> String {
    arg.get_long()
        .map_or_else(|| arg.get_id().as_str().replace('_', "-"), str::to_owned)
}

/// True when `arg` may take several values (`reload-path = ["a", "b"]`).
pub(crate) fn takes_many(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
        || arg.get_num_args().is_some_and(|n| n.max_values() > 1)
}

/// True when `arg` is an on/off flag (`reload = true`).
pub(crate) fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

/// Reads and checks `path` against `cmd` (built, so every option has its parser).
/// `app_on_command_line`: the command line named the app, so the file's `app-args` are not used.
pub(crate) fn read(
    path: &Path,
    cmd: &Command,
    app_on_command_line: bool,
) -> Result<FileSettings, ConfigFileError> {
    let fail = |problem| ConfigFileError {
        path: path.to_owned(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(Problem::Read(e)))?;
    let table: toml::Table = text.parse().map_err(|e| fail(syntax_error(&text, &e)))?;
    let args: Vec<(String, &Arg)> = keyed_args(cmd).collect();
    let mut values = Vec::new();
    let mut seen: Vec<(&Id, &str)> = Vec::new();
    for (key, value) in &table {
        let canonical = key.replace('_', "-");
        let Some((_, arg)) = args.iter().find(|(k, _)| *k == canonical) else {
            return Err(fail(Problem::UnknownKey {
                key: key.clone(),
                suggestion: closest(&canonical, args.iter().map(|(k, _)| k.as_str())),
            }));
        };
        if let Some((_, first)) = seen.iter().find(|(id, _)| *id == arg.get_id()) {
            return Err(fail(Problem::Twice {
                first: (*first).to_owned(),
                second: key.clone(),
            }));
        }
        seen.push((arg.get_id(), key));
        let words = words_of(arg, value).map_err(|expected| {
            fail(Problem::Value {
                key: key.clone(),
                reason: expected,
            })
        })?;
        for word in &words {
            check_value(cmd, arg, word).map_err(|reason| {
                fail(Problem::Value {
                    key: key.clone(),
                    reason,
                })
            })?;
        }
        values.push((
            arg.get_id().clone(),
            words.into_iter().map(Into::into).collect(),
        ));
    }
    let has = |id: &str| values.iter().any(|(set, _): &(Id, _)| set == id);
    if has(APP_ARGS) && !has(APP) {
        return Err(fail(Problem::AppArgsWithoutApp));
    }
    if app_on_command_line {
        values.retain(|(id, _)| id != APP && id != APP_ARGS);
    }
    Ok(FileSettings {
        path: path.to_owned(),
        values,
        flagged: Vec::new(),
    })
}

/// A TOML value as the words clap would have read on a command line, or what was expected.
fn words_of(arg: &Arg, value: &toml::Value) -> Result<Vec<String>, String> {
    if is_switch(arg) {
        return match value {
            toml::Value::Boolean(on) => Ok(vec![on.to_string()]),
            other => Err(format!("expected true or false, not {}", a(other))),
        };
    }
    let value_name = arg
        .get_value_names()
        .and_then(|names| names.first())
        .map_or_else(|| key_of(arg).to_uppercase(), ToString::to_string);
    match value {
        toml::Value::Array(items) if takes_many(arg) => items
            .iter()
            .map(|item| {
                scalar(item).ok_or_else(|| {
                    format!(
                        "expected a list of {value_name}, but one item is {}",
                        a(item)
                    )
                })
            })
            .collect(),
        toml::Value::Array(_) => Err(format!("expected one {value_name}, not a list")),
        other => scalar(other)
            .map(|word| vec![word])
            .ok_or_else(|| format!("expected {value_name}, not {}", a(other))),
    }
}

/// A string or number as the word it stands for on a command line.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        // `{x:?}` keeps the point (`2.0`, not `2`): a whole-number option refuses it.
        toml::Value::Float(x) => Some(format!("{x:?}")),
        _ => None,
    }
}

/// "a string", "an integer", ... for messages.
fn a(value: &toml::Value) -> String {
    let kind = match value {
        toml::Value::Array(_) => "list",
        toml::Value::Table(_) => "table",
        other => other.type_str(),
    };
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {kind}")
}

/// Runs `arg`'s own parser on `word` (in a one-option command, so the other options' rules do
/// not apply) and turns its refusal into one line, e.g. "invalid value '0' for '--workers <N>':
/// expected a whole number from 1 to 1024".
fn check_value(cmd: &Command, arg: &Arg, word: &str) -> Result<(), String> {
    let mut option = Arg::new("value")
        .action(ArgAction::Set)
        .num_args(ValueRange::SINGLE)
        .allow_hyphen_values(true)
        .value_parser(arg.get_value_parser().clone());
    if let Some(names) = arg.get_value_names() {
        option = option.value_names(names.iter().cloned());
    }
    // A positional (the app) is named as `--help` names it, `<LIB:SYMBOL>`, not as a flag.
    let command_line = match arg.get_long() {
        Some(long) => {
            option = option.long(long.to_owned());
            format!("--{long}={word}")
        }
        None => {
            option = option.index(1);
            word.to_owned()
        }
    };
    let check = Command::new(cmd.get_name().to_owned())
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .color(clap::ColorChoice::Never)
        .arg(option);
    check
        .try_get_matches_from([command_line])
        .map(drop)
        .map_err(|e| one_line(&e.to_string()))
}

/// A clap message on one line, without its "error: " prefix, usage and "For more information"
/// hint.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_owned()
}

/// A TOML syntax error with its line and column (toml's own message spans several lines).
fn syntax_error(text: &str, error: &toml::de::Error) -> Problem {
    let offset = error.span().map_or(0, |span| span.start).min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Problem::Syntax {
        line,
        column,
        message: one_line(error.message()),
    }
}

/// The known key closest to a misspelt one, if it is close enough to be what was meant.
fn closest<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<String> {
    /// More edits than this and the guess is likely wrong.
    const MAX_EDITS: usize = 3;
    known
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, _)| *d <= MAX_EDITS)
        .min()
        .map(|(_, k)| k.to_owned())
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// A config file that cannot be used: what is wrong, in one line that names the file.
#[derive(Debug)]
pub struct ConfigFileError {
    path: PathBuf,
    problem: Problem,
}

#[derive(Debug)]
enum Problem {
    Read(std::io::Error),
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    UnknownKey {
        key: String,
        suggestion: Option<String>,
    },
    Twice {
        first: String,
        second: String,
    },
    Value {
        key: String,
        reason: String,
    },
    AppArgsWithoutApp,
    /// A rule between options, in clap's words.
    Rule(String),
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.problem {
            Problem::Read(e) => write!(f, "cannot read config file {path}: {e}"),
            Problem::Syntax {
                line,
                column,
                message,
            } => write!(f, "{path}:{line}:{column}: not valid TOML: {message}"),
            Problem::UnknownKey { key, suggestion } => {
                write!(f, "{path}: unknown key '{key}'")?;
                if let Some(known) = suggestion {
                    write!(f, " (did you mean '{known}'?)")?;
                }
                write!(
                    f,
                    "; keys are the long option names of `webserver --help`, plus app and app-args"
                )
            }
            Problem::Twice { first, second } => write!(
                f,
                "{path}: '{first}' and '{second}' set the same option; keep one"
            ),
            Problem::Value { key, reason } => write!(f, "{path}: key '{key}': {reason}"),
            Problem::Rule(rule) => write!(f, "{path}: {rule}"),
            Problem::AppArgsWithoutApp => write!(
                f,
                "{path}: app-args without app; the app's arguments go with the app it names"
            ),
        }
    }
}

impl std::error::Error for ConfigFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            Problem::Read(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_keys_get_the_closest_known_one() {
        let known = ["workers", "threads", "bind", "max-body"];
        assert_eq!(
            closest("wokers", known.into_iter()),
            Some("workers".to_owned())
        );
        assert_eq!(
            closest("max-bdy", known.into_iter()),
            Some("max-body".to_owned())
        );
        assert_eq!(closest("listen-everywhere", known.into_iter()), None);
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let text = "workers = 2\nbind = \n";
        let error = text.parse::<toml::Table>().unwrap_err();
        let Problem::Syntax { line, .. } = syntax_error(text, &error) else {
            panic!("not a syntax problem");
        };
        assert_eq!(line, 2);
    }
}
