//! What to serve, with which packages and which event loop, from the app arguments
//! (`webserver asgi:app main:app [--venv PATH] [--loop auto|asyncio|uvloop]
//! [--startup-timeout SECS]`) or, when the server passes none, from the environment
//! (`WEBSERVER_ASGI_APP`, `VIRTUAL_ENV`).

use python_embed::target::{flag_value, target_or_env, venv_or_env, Target, VENV_FLAG};
use std::path::PathBuf;
use std::time::Duration;

/// Names the ASGI target when no app argument does (for servers without app arguments).
pub(crate) const APP_ENV: &str = "WEBSERVER_ASGI_APP";
const LOOP_FLAG: &str = "--loop";
const STARTUP_TIMEOUT_FLAG: &str = "--startup-timeout";
/// How long the lifespan startup may take unless `--startup-timeout` says otherwise (hypercorn's
/// default; uvicorn waits for ever, which leaves a hot swap hanging on a startup that hangs).
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// The example in error messages: FastAPI's and uvicorn's docs spell it so.
const EXAMPLE: &str = "main:app";

/// The event loop each worker runs the app on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoopKind {
    /// uvloop when installed, else asyncio's own (uvicorn's default).
    Auto,
    Asyncio,
    Uvloop,
}

impl LoopKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            LoopKind::Auto => "auto",
            LoopKind::Asyncio => "asyncio",
            LoopKind::Uvloop => "uvloop",
        }
    }
}

/// Everything `init` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) target: Target,
    /// The virtualenv whose packages the app uses; `None`: the interpreter's own.
    pub(crate) venv: Option<PathBuf>,
    pub(crate) event_loop: LoopKind,
    /// How long the lifespan startup may take before `init` fails.
    pub(crate) startup_timeout: Duration,
}

impl Config {
    /// Reads the app arguments first, the environment for what they leave out.
    pub(crate) fn from_args_and_env(
        args: &[String],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, String> {
        let mut target = None;
        let mut venv = None;
        let mut event_loop = LoopKind::Auto;
        let mut startup_timeout = DEFAULT_STARTUP_TIMEOUT;
        let mut words = args.iter();
        while let Some(word) = words.next() {
            if let Some(path) = flag_value(word, VENV_FLAG, &mut words) {
                venv = Some(PathBuf::from(path?));
            } else if let Some(kind) = flag_value(word, LOOP_FLAG, &mut words) {
                event_loop = match kind?.as_str() {
                    "auto" => LoopKind::Auto,
                    "asyncio" => LoopKind::Asyncio,
                    "uvloop" => LoopKind::Uvloop,
                    other => {
                        return Err(format!(
                            "--loop {other}: choose auto (uvloop when installed), asyncio or uvloop"
                        ))
                    }
                };
            } else if let Some(secs) = flag_value(word, STARTUP_TIMEOUT_FLAG, &mut words) {
                let secs = secs?;
                startup_timeout = secs
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        format!(
                            "--startup-timeout {secs}: give the seconds the lifespan startup \
                             may take, a number above 0 (default 60)"
                        )
                    })?;
            } else if word.starts_with('-') {
                return Err(format!(
                    "unknown argument '{word}' for the ASGI bridge: it takes module:callable, \
                     --venv PATH, --loop auto|asyncio|uvloop and --startup-timeout SECS"
                ));
            } else if target.is_some() {
                return Err(format!(
                    "one ASGI target only: '{word}' follows another (give module:callable once)"
                ));
            } else {
                target = Some(Target::parse(word, "ASGI", EXAMPLE)?);
            }
        }
        let target = target_or_env(target, APP_ENV, &env, "ASGI", EXAMPLE, || {
            format!(
                "no ASGI app named: run `webserver asgi:app module:callable`, e.g. \
                 `webserver asgi:app {EXAMPLE}` (or set {APP_ENV}=module:callable)"
            )
        })?;
        let (venv, _) = venv_or_env(venv, env);
        Ok(Config {
            target,
            venv,
            event_loop,
            startup_timeout,
        })
    }
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
    fn target_venv_and_loop_from_arguments_or_environment() {
        let c = config(
            &[
                "main:app",
                "--loop",
                "asyncio",
                "--venv=/v",
                "--startup-timeout=2.5",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.target.to_string(), "main:app");
        assert_eq!(c.startup_timeout, Duration::from_millis(2500));
        assert_eq!(c.venv, Some(PathBuf::from("/v")));
        assert_eq!(c.event_loop, LoopKind::Asyncio);
        let env = [(APP_ENV, "api:app"), ("VIRTUAL_ENV", "/env")];
        let c = config(&["--loop=uvloop"], &env).unwrap();
        assert_eq!(c.target.to_string(), "api:app");
        assert_eq!(c.venv, Some(PathBuf::from("/env")));
        assert_eq!(c.event_loop, LoopKind::Uvloop);
        let defaults = config(&["a:b"], &[]).unwrap();
        assert_eq!(defaults.event_loop, LoopKind::Auto);
        assert_eq!(defaults.startup_timeout, DEFAULT_STARTUP_TIMEOUT);
    }

    #[test]
    fn bad_words_are_refused_with_what_to_do() {
        for (args, needle) in [
            (&[][..], "webserver asgi:app main:app"),
            (&["main app"][..], "not a ASGI target"),
            (&["a:b", "c:d"][..], "one ASGI target only"),
            (&["a:b", "--loop", "trio"][..], "choose auto"),
            (&["a:b", "--loop"][..], "--loop needs a value"),
            (&["a:b", "--workers"][..], "unknown argument '--workers'"),
            (&["a:b", "--startup-timeout", "0"][..], "a number above 0"),
            (&["a:b", "--startup-timeout=soon"][..], "a number above 0"),
        ] {
            let err = config(args, &[]).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}
