//! `LIB:SYMBOL` → a library file and a symbol name.
//!
//! Unlike bare `dlopen`, which searches the system paths for a name without a slash, a library
//! named on our command line is always a file the user can point at: a path (anything with a `/`
//! or ending in `.so`) is taken relative to the current directory, and a bare `NAME` means
//! `libNAME.so` in the current directory, then beside the `webserver` executable (where
//! `cargo build` puts the sample apps).

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
                let advice = if crate::scaffold::is_sample_app(lib) {
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
            _ => Err(TargetError::Syntax(arg.to_owned())),
        }
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
        if let Some(found) = looked_in.iter().find(|p| p.is_file()) {
            return Ok(found.clone());
        }
        if let Some(dir) = looked_in.iter().find(|p| p.is_dir()) {
            return Err(TargetError::IsDirectory(dir.clone()));
        }
        Err(TargetError::NotFound {
            lib: self.lib.clone(),
            looked_in,
        })
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
