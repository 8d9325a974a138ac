//! What to serve and with which Python: the WSGI target (`module:callable`) and the virtualenv,
//! from the app arguments (`webserver wsgi:app flaskapp:app [--venv PATH]`) or, when the server
//! passes none, from the environment (`WEBSERVER_WSGI_APP`, `VIRTUAL_ENV`).

use python_embed::target::{flag_value, target_or_env, venv_or_env, VENV_FLAG};
pub(crate) use python_embed::target::{Target, VENV_ENV};
use std::path::PathBuf;

/// Names the WSGI target when no app argument does (for servers without app arguments).
pub(crate) const APP_ENV: &str = "WEBSERVER_WSGI_APP";
/// The queue for the thread running the app (the bridge's `handoff`): `0` off, `1` for every app,
/// unset (or `auto`) for an app whose calls take long enough to gain from it. With the
/// holder sending what it ran (ABI 1.3 `waker_wake_here`) it halves the serving threads'
/// hand-overs for the Flask hello at `--threads 4`; for the bare hello it saves none and
/// triples the p99 (bench/RESULTS.md).
pub(crate) const HANDOFF_ENV: &str = "WEBSERVER_WSGI_HANDOFF";
/// The example in error messages: the article's.
const EXAMPLE: &str = "flaskapp:app";

/// Everything `init` needs to start Python and find the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) target: Target,
    /// The virtualenv whose packages the app uses; `None`: the interpreter's own.
    pub(crate) venv: Option<PathBuf>,
    /// What chose `venv` (`--venv` or `VIRTUAL_ENV`), for the startup line.
    pub(crate) venv_from: &'static str,
    /// [`HANDOFF_ENV`].
    pub(crate) handoff: Handoff,
}

/// Which requests the handoff queue takes ([`HANDOFF_ENV`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handoff {
    /// None: every serving thread runs its own requests.
    Off,
    /// Those of an app whose calls take long (the default).
    Auto,
    /// Every body-less request that arrives while the app runs.
    Always,
}

impl Handoff {
    fn from_env(value: Option<&str>) -> Handoff {
        match value.map(str::trim) {
            None | Some("" | "auto") => Handoff::Auto,
            Some("0") => Handoff::Off,
            Some(_) => Handoff::Always,
        }
    }
}

impl Config {
    /// Reads the app arguments first, the environment for what they leave out.
    pub(crate) fn from_args_and_env(
        args: &[String],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, String> {
        let mut target = None;
        let mut venv = None;
        let mut words = args.iter();
        while let Some(word) = words.next() {
            if let Some(path) = flag_value(word, VENV_FLAG, &mut words) {
                venv = Some(PathBuf::from(path?));
            } else if word.starts_with('-') {
                return Err(unknown_arg(word));
            } else if target.is_some() {
                return Err(format!(
                    "one WSGI target only: '{word}' follows another (give module:callable once)"
                ));
            } else {
                target = Some(Target::parse(word, "WSGI", EXAMPLE)?);
            }
        }
        let target = target_or_env(target, APP_ENV, &env, "WSGI", EXAMPLE, || {
            format!(
                "no WSGI app named: run `webserver wsgi:app module:callable` \
                 (or set {APP_ENV}=module:callable)"
            )
        })?;
        let handoff = Handoff::from_env(env(HANDOFF_ENV).as_deref());
        let (venv, venv_from) = venv_or_env(venv, env);
        Ok(Config {
            target,
            venv,
            venv_from,
            handoff,
        })
    }
}

fn unknown_arg(word: &str) -> String {
    format!(
        "unknown argument '{word}' for the WSGI bridge: it takes module:callable and --venv PATH"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Config::from_args_and_env(&args, |k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn the_articles_target_is_module_colon_callable() {
        let c = config(&["flaskapp:app"], &[]).unwrap();
        assert_eq!(c.target.module, "flaskapp");
        assert_eq!(c.target.callable, "app");
        assert_eq!(c.venv, None);
        let c = config(&["helloworld.wsgi"], &[]).unwrap();
        assert_eq!(c.target.to_string(), "helloworld.wsgi:application");
    }

    #[test]
    fn arguments_win_over_the_environment() {
        let env = [(APP_ENV, "pyramidapp:app"), (VENV_ENV, "/env/a")];
        let c = config(&["flaskapp:app", "--venv", "/env/b"], &env).unwrap();
        assert_eq!(c.target.to_string(), "flaskapp:app");
        assert_eq!(c.venv, Some(PathBuf::from("/env/b")));
        assert_eq!(c.venv_from, "--venv");
        let c = config(&["--venv=/env/c"], &env).unwrap();
        assert_eq!(c.target.to_string(), "pyramidapp:app");
        assert_eq!(c.venv, Some(PathBuf::from("/env/c")));
        let c = config(&[], &env).unwrap();
        assert_eq!(c.venv, Some(PathBuf::from("/env/a")));
        assert_eq!(c.venv_from, "VIRTUAL_ENV");
    }

    #[test]
    fn the_handoff_queue_is_for_slow_apps_unless_told() {
        for (value, mode) in [
            (None, Handoff::Auto),
            (Some("auto"), Handoff::Auto),
            (Some("0"), Handoff::Off),
            (Some("1"), Handoff::Always),
        ] {
            let env: Vec<_> = value.map(|v| (HANDOFF_ENV, v)).into_iter().collect();
            assert_eq!(config(&["a:b"], &env).unwrap().handoff, mode, "{value:?}");
        }
    }

    #[test]
    fn bad_words_are_refused_with_what_to_do() {
        for (args, needle) in [
            (&[][..], "webserver wsgi:app module:callable"),
            (&["flask app:x"][..], "not a WSGI target"),
            (&["a:b", "c:d"][..], "one WSGI target only"),
            (&["a:b", "--venv"][..], "--venv needs a value"),
            (&["a:b", "--workers"][..], "unknown argument '--workers'"),
            (&["1mod:app"][..], "not a WSGI target"),
        ] {
            let err = config(args, &[]).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}
