//! What to serve and with which packages, as the bridges' app arguments spell it: the target
//! (`module:callable`, as `python webserver2.py flaskapp:app` and `uvicorn main:app` take it) and
//! the virtualenv (`--venv PATH`, else `VIRTUAL_ENV`, which `source venv/bin/activate` sets).

use std::path::PathBuf;

/// The variable `source venv/bin/activate` sets; Python users expect it to choose the packages.
pub const VENV_ENV: &str = "VIRTUAL_ENV";
/// The app argument naming a virtualenv (`--venv PATH` or `--venv=PATH`).
pub const VENV_FLAG: &str = "--venv";

/// `module:callable`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// A module name for `importlib.import_module` (dotted names allowed).
    pub module: String,
    /// An attribute of the module; dots walk into nested attributes (`pkg.mod:obj.app`).
    pub callable: String,
}

impl Target {
    /// Parses `module:callable`; `module` alone means its `application` attribute (PEP 3333's and
    /// Django's conventional name, in `wsgi.py` and `asgi.py` alike). `kind` ("WSGI", "ASGI") and
    /// `example` word the error.
    pub fn parse(spec: &str, kind: &str, example: &str) -> Result<Target, String> {
        let (module, callable) = match spec.split_once(':') {
            Some((m, c)) => (m.trim(), c.trim()),
            None => (spec.trim(), "application"),
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|part| {
                    !part.is_empty()
                        && !part.starts_with(|c: char| c.is_ascii_digit())
                        && part.chars().all(|c| c == '_' || c.is_alphanumeric())
                })
        };
        if !valid(module) || !valid(callable) {
            return Err(format!(
                "'{spec}' is not a {kind} target: give module:callable, e.g. {example}"
            ));
        }
        Ok(Target {
            module: module.to_owned(),
            callable: callable.to_owned(),
        })
    }
}

/// The target given as an argument, else the one `app_env` names; `missing` words the error when
/// there is neither. `kind` and `example` word a target that does not parse, as in
/// [`Target::parse`].
pub fn target_or_env(
    given: Option<Target>,
    app_env: &str,
    env: impl Fn(&str) -> Option<String>,
    kind: &str,
    example: &str,
    missing: impl FnOnce() -> String,
) -> Result<Target, String> {
    match given {
        Some(target) => Ok(target),
        None => match env(app_env).filter(|s| !s.trim().is_empty()) {
            Some(spec) => Target::parse(&spec, kind, example),
            None => Err(missing()),
        },
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.module, self.callable)
    }
}

/// The value of `flag` when `word` is `flag VALUE` (the value taken from `rest`) or `flag=VALUE`;
/// `None` when `word` is another word.
pub fn flag_value<'a>(
    word: &str,
    flag: &str,
    rest: &mut impl Iterator<Item = &'a String>,
) -> Option<Result<String, String>> {
    let tail = word.strip_prefix(flag)?;
    Some(match tail.strip_prefix('=') {
        Some(value) => Ok(value.to_owned()),
        None if tail.is_empty() => rest
            .next()
            .cloned()
            .ok_or_else(|| format!("{flag} needs a value: {flag} VALUE")),
        None => return None,
    })
}

/// The virtualenv: `--venv` if given, else `VIRTUAL_ENV`; with what chose it.
pub fn venv_or_env(
    venv: Option<PathBuf>,
    env: impl Fn(&str) -> Option<String>,
) -> (Option<PathBuf>, &'static str) {
    match venv {
        Some(venv) => (Some(venv), VENV_FLAG),
        None => (
            env(VENV_ENV).filter(|s| !s.is_empty()).map(PathBuf::from),
            VENV_ENV,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_colon_callable_or_the_conventional_name() {
        let t = Target::parse("pkg.main:api.app", "ASGI", "main:app").unwrap();
        assert_eq!(
            (t.module.as_str(), t.callable.as_str()),
            ("pkg.main", "api.app")
        );
        let t = Target::parse("mysite.asgi", "ASGI", "main:app").unwrap();
        assert_eq!(t.to_string(), "mysite.asgi:application");
        for bad in ["main app:x", "1mod:app", "a:", ":b", "a..b:c"] {
            let err = Target::parse(bad, "ASGI", "main:app").unwrap_err();
            assert!(err.contains("not a ASGI target"), "{err}");
        }
    }

    #[test]
    fn flags_take_the_next_word_or_after_an_equals_sign() {
        let words: Vec<String> = vec!["/v".into()];
        let mut rest = words.iter();
        assert_eq!(
            flag_value("--venv", "--venv", &mut rest),
            Some(Ok("/v".into()))
        );
        assert_eq!(
            flag_value("--venv=/w", "--venv", &mut rest),
            Some(Ok("/w".into()))
        );
        assert!(flag_value("--venv", "--venv", &mut rest).unwrap().is_err());
        assert_eq!(flag_value("--venvx", "--venv", &mut rest), None);
        assert_eq!(flag_value("main:app", "--venv", &mut rest), None);
    }
}
