//! Telling an ASGI app from a WSGI one when it loads. Both are Python callables, so an ASGI app
//! (FastAPI, Starlette, Django's `get_asgi_application()`) given to this bridge would load and then
//! fail every request with a raw `TypeError`; it is refused at `init` instead, with one line that
//! says what it is and how it can be served.
//!
//! Recognised without importing any framework, the way ASGI servers tell the two ASGI styles
//! apart: a coroutine function (`async def app(scope, receive, send)`), an object whose
//! `__call__` is one (ASGI 3 apps are instances of such classes), or a class whose instances'
//! `__call__` is one (ASGI 2: `App(scope)` returns the coroutine's owner).

use crate::config::Target;
use pyo3::prelude::*;

/// `Err(one line)` when `callable` is an ASGI app.
pub(crate) fn refuse(
    py: Python<'_>,
    target: &Target,
    callable: &Bound<'_, PyAny>,
) -> Result<(), String> {
    match kind(py, callable) {
        Ok(Some(kind)) => Err(format!(
            "{target} is an ASGI app ({kind}, called as (scope, receive, send)), not a WSGI app \
             (application(environ, start_response)): serve it with the ASGI bridge, \
             `webserver asgi:app {target}`, or name the app's WSGI callable"
        )),
        // Not recognisably ASGI (or `inspect` failed): served as WSGI, as before.
        Ok(None) | Err(_) => Ok(()),
    }
}

/// What kind of ASGI callable `callable` is, or `None` for anything else.
fn kind(py: Python<'_>, callable: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    let inspect = py.import_bound("inspect")?;
    let is_async = |object: &Bound<'_, PyAny>| -> PyResult<bool> {
        inspect
            .call_method1("iscoroutinefunction", (object,))?
            .is_truthy()
    };
    if is_async(callable)? {
        return Ok(Some("an async function".to_owned()));
    }
    let is_class = inspect.call_method1("isclass", (callable,))?.is_truthy()?;
    // On a class, `__call__` is what its instances run (ASGI 2); on an instance, its own.
    let call = match callable.getattr("__call__") {
        Ok(call) => call,
        Err(_) => return Ok(None),
    };
    if !is_async(&call)? {
        return Ok(None);
    }
    let name = |object: &Bound<'_, PyAny>| -> PyResult<String> {
        let module: String = object.getattr("__module__")?.extract()?;
        let name: String = object.getattr("__qualname__")?.extract()?;
        Ok(format!("{module}.{name}"))
    };
    Ok(Some(if is_class {
        format!("class {} with an async __call__ (ASGI 2)", name(callable)?)
    } else {
        format!(
            "a {} instance with an async __call__",
            name(&callable.get_type())?
        )
    }))
}
