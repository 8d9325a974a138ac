//! What the Python bridges share (`libwsgi.so` serves WSGI apps, `libasgi.so` ASGI apps): the
//! app arguments' target and virtualenv ([`target`]), starting CPython once per worker and
//! importing the app with one-line errors ([`interpreter`]), taking the GIL on the server's
//! serving threads ([`python_thread`]), and the response headers that belong to the server
//! ([`hop_by_hop`]).

mod gil_line;
pub mod hop_by_hop;
pub mod interpreter;
pub mod python_thread;
pub mod target;
