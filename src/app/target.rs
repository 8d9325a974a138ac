//! `LIB:SYMBOL` → a library file and a symbol name.
//!
//! Unlike bare `dlopen`, which searches the system paths for a name without a slash, a library
//! named on our command line is always a file the user can point at: a path (anything with a `/`
//! or ending in `.so`) is taken relative to the current directory, and a bare `NAME` means
//! `libNAME.so` in the current directory, then beside the `webserver` executable (where
//! `cargo build` puts the sample apps). Where no library is found but a Python module by that
//! name is (`flaskapp:app` beside `flaskapp.py`: gunicorn's habit), the error names the WSGI
//! adapter command that serves it.

use std::fmt;
use std::path::{Path, PathBuf};

/// What the command line asked to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AppTarget {
    /// The library part as typed.
    pub(crate) lib: String,
    /// The exported descriptor's name.
    pub(crate) symbol: String,
}

/// Why `LIB:SYMBOL` could not be turned into a file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TargetError {
    /// No `:` or an empty side.
    Syntax(String),
    /// No file at any of the candidate places.
    NotFound {
        lib: String,
        looked_in: Vec<PathBuf>,
    },
    /// The library named is a directory (a crate's or a build's, typically).
    IsDirectory(PathBuf),
    /// No library, but a Python module by that name: the app is for the WSGI adapter.
    PythonModule {
        lib: String,
        file: PathBuf,
        /// The adapter's own `module:callable` argument.
        wsgi_target: String,
    },
}

include!(concat!(env!("OUT_DIR"), "/sample_apps.rs"));

/// Whether `lib` (as typed in LIB:SYMBOL) names one of the sample apps `cargo build --workspace`
/// builds beside the executable.
fn is_sample_app(lib: &str) -> bool {
    SAMPLE_APPS.contains(&lib)
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::Syntax(arg) => write!(
                f,
                "'{arg}' is not LIB:SYMBOL; name a library and the app it exports, e.g. hello:app or ./libhello.so:app"
            ),
            TargetError::NotFound { lib, looked_in } => {
                let places: Vec<String> =
                    looked_in.iter().map(|p| p.display().to_string()).collect();
                let advice = if is_sample_app(lib) {
                    "build the sample apps (cargo build --workspace in the webserver checkout) or give its path"
                } else {
                    "build it (cargo build, or make for a C app) and give its path, e.g. ./target/debug/libNAME.so:app"
                };
                write!(
                    f,
                    "cannot find library '{lib}': looked in {}; {advice}",
                    places.join(", ")
                )
            }
            TargetError::IsDirectory(path) => write!(
                f,
                "{} is a directory, not a library; name the .so file inside it, e.g. {}/target/debug/libNAME.so:app",
                path.display(),
                path.display()
            ),
            TargetError::PythonModule {
                lib,
                file,
                wsgi_target,
            } => write!(
                f,
                "'{lib}' is a Python module ({}), not a library; serve it with the WSGI adapter: webserver wsgi:app {wsgi_target}",
                file.display()
            ),
        }
    }
}

impl std::error::Error for TargetError {}

impl AppTarget {
    /// Splits at the last `:` so that a path containing `:` still works.
    pub(crate) fn parse(arg: &str) -> Result<AppTarget, TargetError> {
        match arg.rsplit_once(':') {
            Some((lib, symbol)) if !lib.is_empty() && !symbol.is_empty() => Ok(AppTarget {
                lib: lib.to_owned(),
                symbol: symbol.to_owned(),
            }),
            _ => Err(Self::python_module_alone(arg)
                .unwrap_or_else(|| TargetError::Syntax(arg.to_owned()))),
        }
    }

    /// gunicorn's `module` alone (its `module:application`), when the current directory holds
    /// that module: the adapter takes the same argument.
    fn python_module_alone(arg: &str) -> Option<TargetError> {
        let as_target = AppTarget {
            lib: arg.to_owned(),
            symbol: String::new(),
        };
        let cwd = std::env::current_dir().ok()?;
        let (module, file) = as_target.python_module(&cwd)?;
        Some(TargetError::PythonModule {
            lib: arg.to_owned(),
            file,
            wsgi_target: module,
        })
    }

    /// The places this target may live, in lookup order.
    pub(crate) fn candidates(&self, cwd: &Path, exe_dir: Option<&Path>) -> Vec<PathBuf> {
        if self.lib.contains('/') || self.lib.ends_with(std::env::consts::DLL_SUFFIX) {
            return vec![cwd.join(&self.lib)];
        }
        let file = format!(
            "{}{}{}",
            std::env::consts::DLL_PREFIX,
            self.lib,
            std::env::consts::DLL_SUFFIX
        );
        let mut places = vec![cwd.join(&file)];
        if let Some(dir) = exe_dir {
            let beside = dir.join(&file);
            if !places.contains(&beside) {
                places.push(beside);
            }
        }
        places
    }

    /// The first candidate that is a file. A directory where the library should be is named as
    /// such: dlopen would only say "cannot read file data: Is a directory".
    pub(crate) fn resolve(&self) -> Result<PathBuf, TargetError> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        let looked_in = self.candidates(&cwd, exe_dir.as_deref());
        let found = looked_in.iter().find(|p| p.is_file());
        if let Some(found) = found.filter(|p| p.extension().is_none_or(|ext| ext != "py")) {
            return Ok(found.clone());
        }
        // gunicorn's and the article's `flaskapp:app`, typed without `wsgi:app` in front.
        if let Some((module, file)) = self.python_module(&cwd) {
            return Err(TargetError::PythonModule {
                lib: self.lib.clone(),
                file,
                wsgi_target: format!("{module}:{}", self.symbol),
            });
        }
        if let Some(dir) = looked_in.iter().find(|p| p.is_dir()) {
            return Err(TargetError::IsDirectory(dir.clone()));
        }
        Err(TargetError::NotFound {
            lib: self.lib.clone(),
            looked_in,
        })
    }

    /// The Python module (`pkg.module`, `flaskapp.py`, `src/app.py`) the library part names, as
    /// Python would import it from `cwd`, and its file, when there is one.
    fn python_module(&self, cwd: &Path) -> Option<(String, PathBuf)> {
        let (module, parts): (String, Vec<&str>) = match self.lib.strip_suffix(".py") {
            Some(path) => {
                let path = path.trim_start_matches("./");
                (path.replace('/', "."), path.split('/').collect())
            }
            None if !self.lib.contains('/') => (self.lib.clone(), self.lib.split('.').collect()),
            None => return None,
        };
        let identifier = |part: &&str| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_alphanumeric() || c == '_')
        };
        if !parts.iter().all(identifier) {
            return None;
        }
        let base = parts
            .iter()
            .fold(cwd.to_path_buf(), |dir, part| dir.join(part));
        [base.with_extension("py"), base.join("__init__.py")]
            .into_iter()
            .find(|file| file.is_file())
            .map(|file| (module, file))
    }
}

impl fmt::Display for AppTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.lib, self.symbol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_apps_are_known() {
        assert!(is_sample_app("hello") && is_sample_app("c_hello") && !is_sample_app("myapp"));
    }

    #[test]
    fn parse_splits_at_last_colon() {
        let cases = [
            ("hello:app", Some(("hello", "app"))),
            ("./a:b/libx.so:api", Some(("./a:b/libx.so", "api"))),
            ("hello", None),
            (":app", None),
            ("hello:", None),
        ];
        for (arg, want) in cases {
            let got = AppTarget::parse(arg).ok();
            let got = got.as_ref().map(|t| (t.lib.as_str(), t.symbol.as_str()));
            assert_eq!(got, want, "{arg}");
        }
    }

    #[test]
    fn candidates_follow_path_rules() {
        let cwd = Path::new("/w");
        let exe = Path::new("/bin/x");
        let cases: [(&str, &[&str]); 4] = [
            ("hello", &["/w/libhello.so", "/bin/x/libhello.so"]),
            ("libpyramidish.so", &["/w/libpyramidish.so"]),
            (
                "target/release/libflaskish.so",
                &["/w/target/release/libflaskish.so"],
            ),
            ("/abs/libx.so", &["/abs/libx.so"]),
        ];
        for (lib, want) in cases {
            let t = AppTarget {
                lib: lib.into(),
                symbol: "app".into(),
            };
            let got = t.candidates(cwd, Some(exe));
            let want: Vec<PathBuf> = want.iter().map(PathBuf::from).collect();
            assert_eq!(got, want, "{lib}");
        }
    }
}
