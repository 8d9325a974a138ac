//! What the binary gives app authors: `webserver new` (a ready-to-build app directory) and
//! `webserver header` (the C header). `webserver completions` / `webserver man` are generated
//! from the clap definition, in `crate::cli::manual`.
//!
//! A generated Rust app depends on a vendored copy of app-abi, written from sources embedded in
//! this binary at build time (`build.rs`): it builds from its own directory alone — offline,
//! wherever it lives, after the server's checkout is gone — and against exactly the ABI of the
//! server that generated it. (A git dependency would need a reachable repository; an absolute
//! path to the checkout breaks when the checkout moves or the binary is installed elsewhere.)

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// The C header every app is built against (app-abi/include/webserver_app.h).
pub(crate) const C_HEADER: &str = include_str!("../../app-abi/include/webserver_app.h");

/// Where `webserver new` puts app-abi inside a generated Rust app.
const VENDORED_ABI_DIR: &str = "vendor/app-abi";

/// The languages `webserver new` writes an app in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Lang {
    /// A cdylib crate using app-abi's safe layer.
    Rust,
    /// A C99 file, the header and a Makefile.
    C,
}

/// Why `webserver new` wrote nothing (or stopped).
#[derive(Debug)]
pub(crate) enum ScaffoldError {
    /// PATH's last component is not usable as a crate, library and directory name.
    BadName(String),
    /// The directory exists and is not empty.
    Exists(PathBuf),
    /// Writing a file failed.
    Io { path: PathBuf, error: io::Error },
}

impl fmt::Display for ScaffoldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScaffoldError::BadName(name) => write!(
                f,
                "'{name}' is not a usable app name (the last component of PATH names the app); use a letter followed by letters, digits, '-' or '_' (at most {MAX_NAME_LEN})"
            ),
            ScaffoldError::Exists(dir) => write!(
                f,
                "{} already exists and is not empty; choose another PATH or remove it",
                dir.display()
            ),
            ScaffoldError::Io { path, error } => {
                write!(f, "cannot write {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for ScaffoldError {}

/// Longest NAME accepted (it becomes a directory, a crate and a library file name).
const MAX_NAME_LEN: usize = 64;

/// Writes an app into the directory `path` (created with its missing parents, as `cargo new`
/// does) and returns its name: the last component of `path`.
pub(crate) fn new_app(path: &Path, lang: Lang) -> Result<String, ScaffoldError> {
    let name = match path.file_name().and_then(|n| n.to_str()) {
        Some(name) if valid_name(name) => name.to_owned(),
        Some(name) => return Err(ScaffoldError::BadName(name.to_owned())),
        None => return Err(ScaffoldError::BadName(path.display().to_string())),
    };
    if std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::Exists(path.to_path_buf()));
    }
    for (file, contents) in app_files(&name, lang) {
        write_file(&path.join(file), &contents)?;
    }
    Ok(name)
}

/// What to run next, printed after `new`.
pub(crate) fn next_steps(dir: &Path, name: &str, lang: Lang) -> String {
    let lib = library_file(name, lang);
    let (build, lib_path) = match lang {
        Lang::Rust => ("cargo build", format!("target/debug/{lib}")),
        Lang::C => ("make", format!("./{lib}")),
    };
    format!(
        "Created {} in {}. Next:\n    cd {} && {build}\n    webserver check {lib_path}:app\n    webserver {lib_path}:app\n",
        match lang {
            Lang::Rust => "a Rust app",
            Lang::C => "a C app",
        },
        dir.display(),
        dir.display()
    )
}

/// The library file the app's build produces.
fn library_file(name: &str, lang: Lang) -> String {
    match lang {
        Lang::Rust => format!("lib{}.so", name.replace('-', "_")),
        Lang::C => format!("lib{name}.so"),
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_NAME_LEN
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Every file of the generated app, as (path relative to its directory, contents).
fn app_files(name: &str, lang: Lang) -> Vec<(String, String)> {
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{lib}}", &name.replace('-', "_"))
            .replace(
                "{{abi}}",
                &format!(
                    "{}.{}",
                    app_abi::raw::WS_ABI_MAJOR,
                    app_abi::raw::WS_ABI_MINOR
                ),
            )
    };
    match lang {
        Lang::Rust => {
            let mut files = vec![
                (
                    "Cargo.toml".to_owned(),
                    fill(include_str!("../../templates/rust/Cargo.toml")),
                ),
                (
                    "src/lib.rs".to_owned(),
                    fill(include_str!("../../templates/rust/lib.rs")),
                ),
                (
                    ".gitignore".to_owned(),
                    include_str!("../../templates/rust/gitignore").to_owned(),
                ),
                (
                    format!("{VENDORED_ABI_DIR}/Cargo.toml"),
                    APP_ABI_MANIFEST.to_owned(),
                ),
            ];
            files.extend(
                APP_ABI_FILES
                    .iter()
                    .map(|(path, text)| (format!("{VENDORED_ABI_DIR}/{path}"), (*text).to_owned())),
            );
            files
        }
        Lang::C => vec![
            (
                format!("{name}.c"),
                fill(include_str!("../../templates/c/app.c")),
            ),
            ("webserver_app.h".to_owned(), C_HEADER.to_owned()),
            (
                "Makefile".to_owned(),
                fill(include_str!("../../templates/c/Makefile")),
            ),
        ],
    }
}

fn write_file(path: &Path, contents: &str) -> Result<(), ScaffoldError> {
    let io_error = |error| ScaffoldError::Io {
        path: path.to_path_buf(),
        error,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error)?;
    }
    std::fs::write(path, contents).map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["hello", "my-app", "a_1"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "1app",
            "-x",
            "a/b",
            "../x",
            "a b",
            &"x".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn vendored_app_abi_is_complete_and_standalone() {
        let paths: Vec<&str> = APP_ABI_FILES.iter().map(|(p, _)| *p).collect();
        for needed in [
            "src/lib.rs",
            "src/raw.rs",
            "src/safe.rs",
            "include/webserver_app.h",
        ] {
            assert!(paths.contains(&needed), "{needed} not embedded: {paths:?}");
        }
        assert!(
            !APP_ABI_MANIFEST.contains("workspace"),
            "{APP_ABI_MANIFEST}"
        );
        assert!(
            APP_ABI_MANIFEST.contains("edition = \"2021\""),
            "{APP_ABI_MANIFEST}"
        );
    }

    #[test]
    fn templates_are_filled() {
        for lang in [Lang::Rust, Lang::C] {
            for (path, text) in app_files("my-app", lang) {
                for placeholder in ["{{name}}", "{{lib}}", "{{abi}}"] {
                    assert!(!text.contains(placeholder), "{path} keeps {placeholder}");
                }
            }
        }
    }
}
