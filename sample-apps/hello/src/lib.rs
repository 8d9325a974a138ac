//! `hello`: the bare app (the article's `wsgiapp.py`) and the benchmark app.
//!
//! Every request gets the same static greeting: the headers are a static list and the body a static
//! slice, so a request costs no allocation beyond the trampoline's one small body box.

use app_abi::{export_app, App, InitContext, Request, Response};

/// The greeting sent for every path.
const GREETING: &str = "Hello, world! from the hello app\n";

/// The app: no state.
pub struct Hello;

impl App for Hello {
    fn init(_ctx: &InitContext<'_>) -> Result<Self, String> {
        Ok(Hello)
    }

    fn call(&self, _req: &mut Request<'_>) -> Response {
        Response::text(200, GREETING)
    }
}

// `call` answers at once and reads nothing, and the body is a static slice: nothing here ever
// waits, so the server may run it on its HTTP/2 thread as hyper runs a service on the
// connection's task (`WS_APP_NONBLOCKING`).
export_app!(
    app,
    Hello,
    name = "hello",
    version = "1.0",
    flags = app_abi::raw::WS_APP_NONBLOCKING
);
