//! The line a worker logs once its app is loaded: which app, which Python, and where its packages
//! come from. Without `--venv` or `VIRTUAL_ENV` the interpreter's own site-packages are used,
//! which is allowed but easy to miss (a package installed in a virtualenv that was not activated
//! is then not found, or found in another version), so the line says so and names the
//! directories.

use crate::config::Config;
use pyo3::prelude::*;

/// `WSGI app flaskapp:app on Python 3.11.7 (/usr); packages from …: DIRS`.
pub(crate) fn line(py: Python<'_>, config: &Config) -> String {
    let version = py.version().split_whitespace().next().unwrap_or("?");
    let (base, dirs) = interpreter_paths(py).unwrap_or_default();
    let from = match &config.venv {
        Some(venv) => format!("virtualenv {} ({})", venv.display(), config.venv_from),
        None => format!(
            "the system Python's site-packages (no --venv or {})",
            crate::config::VENV_ENV
        ),
    };
    let dirs = if dirs.is_empty() {
        "none on sys.path".to_owned()
    } else {
        dirs.join(", ")
    };
    format!(
        "WSGI app {} on Python {version} ({base}); packages from {from}: {dirs}",
        config.target
    )
}

/// `sys.base_prefix` (the installation) and the package directories on `sys.path`, in order.
fn interpreter_paths(py: Python<'_>) -> PyResult<(String, Vec<String>)> {
    let sys = py.import_bound("sys")?;
    let base: String = sys.getattr("base_prefix")?.extract()?;
    let path: Vec<String> = sys.getattr("path")?.extract()?;
    let dirs = path
        .into_iter()
        .filter(|p| {
            let p = p.trim_end_matches('/');
            p.ends_with("site-packages") || p.ends_with("dist-packages")
        })
        .collect();
    Ok((base, dirs))
}
