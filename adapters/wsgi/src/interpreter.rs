//! Starting CPython inside a worker and finding the WSGI callable: `python_embed::interpreter`
//! does both for either Python bridge (the virtualenv, the current directory first on
//! `sys.path`, one-line errors with the app's file:line); this bridge adds what a WSGI callable
//! must be.

use crate::config::{Config, Target};
use pyo3::prelude::*;
pub(crate) use python_embed::interpreter::{last_line, traceback, LoadError};

/// Starts the interpreter (once per process) with the configured virtualenv.
pub(crate) fn start(config: &Config) -> Result<(), String> {
    python_embed::interpreter::start(config.venv.as_deref())
}

/// Imports `target` ([`python_embed::interpreter::import_target`]) and returns the callable, which
/// must not be an ASGI app. Errors are one line; the whole traceback is logged by the caller.
pub(crate) fn load_app(py: Python<'_>, target: &Target) -> Result<PyObject, LoadError> {
    let object = python_embed::interpreter::import_target(py, target)?;
    crate::asgi::refuse(py, target, &object).map_err(|message| LoadError {
        message,
        traceback: None,
    })?;
    if !object.is_callable() {
        return Err(LoadError {
            message: format!(
                "{target} is a {}, not a WSGI callable (an application(environ, start_response))",
                crate::start_response::type_name(&object)
            ),
            traceback: None,
        });
    }
    Ok(object.unbind())
}
