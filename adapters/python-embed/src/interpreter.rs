//! Starting CPython inside a worker and finding the app, the way Python users expect: the
//! virtualenv's packages (`--venv PATH` or `VIRTUAL_ENV`, as if its `bin/python` ran), the current
//! directory first on `sys.path` (`python webserver2.py flaskapp:app` imports `./flaskapp.py`), the
//! usual `PYTHON*` environment variables honoured.
//!
//! Python is initialised once per process: each worker is its own process, and a hot swap starts
//! new ones, so a changed app is imported afresh. It is never finalised: a worker's exit ends it,
//! and finalising while serving threads may still hold Python references would be unsafe.

use crate::target::Target;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Starts the interpreter (once per process) with `venv`'s packages (`None`: the interpreter's own)
/// and leaves the GIL released for the serving threads.
pub fn start(venv: Option<&Path>) -> Result<(), String> {
    // SAFETY: called from `init`, once per process, before any request: nothing else touches Python
    // concurrently.
    if unsafe { ffi::Py_IsInitialized() } != 0 {
        return Ok(());
    }
    expose_libpython_symbols();
    let program = match venv {
        Some(venv) => Some(venv_python(venv)?),
        None => None,
    };
    // SAFETY: PyConfig is initialised by PyConfig_InitPythonConfig before any field is read or
    // written, every string is NUL-terminated and outlives the call that copies it, and the config
    // is cleared exactly once; Py_InitializeFromConfig runs once (checked above).
    unsafe {
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::uninit();
        let cfg = config.as_mut_ptr();
        ffi::PyConfig_InitPythonConfig(cfg);
        // The server owns the signals (HUP swaps, TERM drains): Python must not install handlers.
        (*cfg).install_signal_handlers = 0;
        (*cfg).parse_argv = 0;
        let mut status = ffi::PyStatus_Ok();
        if let Some(program) = &program {
            // As if `venv/bin/python` ran: Python finds `pyvenv.cfg` beside it and uses the
            // virtualenv's site-packages (PEP 405).
            let program = CString::new(program.as_os_str().as_bytes())
                .map_err(|_| "the virtualenv path contains a NUL byte".to_owned())?;
            status = ffi::PyConfig_SetBytesString(
                cfg,
                std::ptr::addr_of_mut!((*cfg).program_name),
                program.as_ptr(),
            );
        }
        if ffi::PyStatus_Exception(status) == 0 {
            let argv0 = c"webserver";
            let mut argv = [argv0.as_ptr()];
            status = ffi::PyConfig_SetBytesArgv(cfg, 1, argv.as_mut_ptr());
        }
        if ffi::PyStatus_Exception(status) == 0 {
            status = ffi::Py_InitializeFromConfig(cfg);
        }
        ffi::PyConfig_Clear(cfg);
        if ffi::PyStatus_Exception(status) != 0 {
            let why = if status.err_msg.is_null() {
                "unknown error".into()
            } else {
                CStr::from_ptr(status.err_msg).to_string_lossy()
            };
            return Err(format!("cannot start Python: {why}"));
        }
        // Let the serving threads take the GIL; this thread takes it back through PyO3 like them.
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

/// `venv/bin/python`, after checking that the virtualenv exists and was made for this Python.
fn venv_python(venv: &Path) -> Result<PathBuf, String> {
    let venv = std::path::absolute(venv).unwrap_or_else(|_| venv.to_path_buf());
    if !venv.join("pyvenv.cfg").is_file() {
        return Err(format!(
            "{} is not a virtualenv (no pyvenv.cfg): create it with `python3 -m venv {}`",
            venv.display(),
            venv.display()
        ));
    }
    let version = embedded_version();
    let site = venv.join(format!("lib/python{version}/site-packages"));
    if !site.is_dir() {
        return Err(format!(
            "virtualenv {} was not made by Python {version}, which this bridge embeds (no {}): \
             recreate it with python{version} -m venv",
            venv.display(),
            site.display()
        ));
    }
    Ok(venv.join("bin").join("python"))
}

/// "3.11": the version of the libpython this library is linked to.
fn embedded_version() -> String {
    // SAFETY: Py_GetVersion may be called before initialisation and returns a static string.
    let full = unsafe { CStr::from_ptr(ffi::Py_GetVersion()) }.to_string_lossy();
    full.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The server loads this library with RTLD_LOCAL, so libpython (our dependency) is loaded local
/// too, and C extension modules (`_json`, `markupsafe._speedups`, …), which are not linked to
/// libpython but expect its symbols in the global scope, would fail to import. Reopening libpython
/// with RTLD_GLOBAL | RTLD_NOLOAD promotes the copy already loaded, as `python` itself has it.
fn expose_libpython_symbols() {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    let symbol = ffi::Py_IsInitialized as *const libc::c_void;
    // SAFETY: dladdr only reads the address and fills `info`; the strings it points to belong to
    // the loader and stay valid while the library stays loaded (it is never unloaded).
    unsafe {
        if libc::dladdr(symbol, info.as_mut_ptr()) == 0 {
            return;
        }
        let path = info.assume_init().dli_fname;
        if !path.is_null() {
            // The handle is kept for the process's life on purpose (libpython is never unloaded).
            libc::dlopen(path, libc::RTLD_NOW | libc::RTLD_GLOBAL | libc::RTLD_NOLOAD);
        }
    }
}

/// Imports `target` with the current directory first on `sys.path` and returns the attribute it
/// names (the caller checks what it is). Errors are one line ending with the traceback's last
/// line and the app's `file:line`; the whole traceback is in [`LoadError::traceback`].
pub fn import_target<'py>(
    py: Python<'py>,
    target: &Target,
) -> Result<Bound<'py, PyAny>, LoadError> {
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| ".".to_owned());
    let sys_path = py
        .import_bound("sys")
        .and_then(|sys| sys.getattr("path"))
        .and_then(|p| p.downcast_into::<PyList>().map_err(PyErr::from));
    if let Ok(path) = sys_path {
        let _ = path.insert(0, &cwd);
    }
    let module = py.import_bound(target.module.as_str()).map_err(|err| {
        LoadError::python(
            py,
            format!("cannot import {} (from {cwd})", target.module),
            err,
        )
    })?;
    let mut object = module.into_any();
    for part in target.callable.split('.') {
        object = object.getattr(part).map_err(|err| {
            LoadError::python(
                py,
                format!("{target}: no callable '{}'", target.callable),
                err,
            )
        })?;
    }
    Ok(object)
}

/// Why the app could not be loaded: one line for the server's error, the traceback for its log.
pub struct LoadError {
    pub message: String,
    pub traceback: Option<String>,
}

impl LoadError {
    /// `context: <last line of the traceback> (at file:line)`, with the traceback.
    pub fn python(py: Python<'_>, context: String, err: PyErr) -> LoadError {
        let at = location(py, &err)
            .map(|at| format!(" (at {at})"))
            .unwrap_or_default();
        LoadError {
            message: format!("{context}: {}{at}", last_line(py, &err)),
            traceback: Some(traceback(py, &err)),
        }
    }
}

/// The traceback's last line (`ModuleNotFoundError: No module named 'x'`).
pub fn last_line(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py.import_bound("traceback").and_then(|tb| {
        tb.call_method1(
            "format_exception_only",
            (err.get_type_bound(py), err.value_bound(py)),
        )?
        .extract::<Vec<String>>()
    });
    match formatted {
        Ok(lines) => lines
            .iter()
            .flat_map(|l| l.lines())
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .trim()
            .to_owned(),
        Err(_) => err.to_string(),
    }
}

/// `file:line` of the app's code that failed: where a `SyntaxError` is, else the innermost
/// traceback frame outside Python's own frozen import machinery.
fn location(py: Python<'_>, err: &PyErr) -> Option<String> {
    let value = err.value_bound(py);
    if let (Ok(file), Ok(line)) = (
        value
            .getattr("filename")
            .and_then(|f| f.extract::<String>()),
        value.getattr("lineno").and_then(|l| l.extract::<u32>()),
    ) {
        return Some(format!("{file}:{line}"));
    }
    let frames = py
        .import_bound("traceback")
        .ok()?
        .call_method1("extract_tb", (err.traceback_bound(py)?,))
        .ok()?;
    let frame_at = |frame: Bound<'_, PyAny>| -> Option<(String, u32)> {
        Some((
            frame.getattr("filename").ok()?.extract().ok()?,
            frame.getattr("lineno").ok()?.extract().ok()?,
        ))
    };
    frames
        .iter()
        .ok()?
        .flatten()
        .filter_map(frame_at)
        .filter(|(file, _)| !file.starts_with("<frozen"))
        .last()
        .map(|(file, line)| format!("{file}:{line}"))
}

/// The whole traceback, as Python prints it: every frame (`File "...", line N, in f`), chained
/// exceptions, the last line.
pub fn traceback(py: Python<'_>, err: &PyErr) -> String {
    // The frames are passed explicitly: before Python 3.12 a fetched exception's value does not
    // carry its traceback (`__traceback__` is None), and formatting the value alone printed only
    // the last line.
    let frames = err
        .traceback_bound(py)
        .map_or_else(|| py.None().into_bound(py), Bound::into_any);
    let formatted = py.import_bound("traceback").and_then(|tb| {
        tb.call_method1(
            "format_exception",
            (err.get_type_bound(py), err.value_bound(py), frames),
        )?
        .extract::<Vec<String>>()
    });
    match formatted {
        Ok(lines) => lines.concat().trim_end().to_owned(),
        Err(_) => err.to_string(),
    }
}
