//! The safe Rust layer over [`crate::raw`]: write an [`App`], export it with [`export_app!`].
//!
//! ```
//! use app_abi::{export_app, App, InitContext, Request, Response};
//!
//! struct Hello;
//!
//! impl App for Hello {
//!     fn init(_ctx: &InitContext<'_>) -> Result<Self, String> {
//!         Ok(Hello)
//!     }
//!     fn call(&self, _req: &mut Request<'_>) -> Response {
//!         Response::text(200, "Hello, world!\n")
//!     }
//! }
//!
//! export_app!(app, Hello, name = "hello", version = "1.0");
//! # fn main() {
//! #     assert_eq!(app.magic, app_abi::raw::WS_APP_MAGIC);
//! #     assert!(app.init.is_some() && app.call.is_some());
//! # }
//! ```
//!
//! Every `extern "C"` entry point the macro exports (`init`, `call`, the body's `next` and `close`,
//! `shutdown`) runs inside one panic boundary (`ffi::boundary`, after rustls-ffi's
//! `ffi_panic_boundary`): a panic never unwinds into the server, it becomes an error code and a log
//! line. All raw-pointer code of this layer lives in `ffi.rs`, `request.rs`, `log.rs` and
//! `deferred.rs` (ABI 1.1: wakers, `try_read`, bodies that answer later), each
//! `unsafe` block with its `// SAFETY:` argument.

mod connection;
mod deferred;
#[cfg(test)]
mod deferred_tests;
mod error;
mod ffi;
mod file;
#[cfg(feature = "json")]
mod json;
mod log;
mod parts;
mod query;
mod request;
mod response;
#[cfg(test)]
mod tests;
mod trailers;
mod upgrade;
mod websocket;
#[cfg(test)]
mod websocket_tests;

pub use connection::Events;
pub use deferred::{BodyIo, DeferredBody, Next, TryRead, Waker};
pub use error::AbiError;
#[doc(hidden)]
pub use ffi::__private;
pub use file::FileSend;
#[cfg(feature = "json")]
pub use json::{Json, JsonBodyError};
pub use log::{InitContext, LogLevel, Logger, NEEDS_ABI_1_1, NEEDS_ABI_1_2, NEEDS_ABI_1_3};
pub use parts::Parts;
pub use query::{form_decode, QueryPairs};
pub use request::{BodyReader, HeaderIter, Request, Vars};
pub use response::{Body, BodyKind, Response};
pub use upgrade::{StreamHandler, StreamIo, Upgraded};
pub use websocket::{Message, Outgoing, Recv, Sent, WebSocket, WebSocketHandler};

/// A web application: the Rust side of one exported [`crate::raw::WsApp`] descriptor.
///
/// One value is built by [`App::init`] when the server loads the app and shared by every request
/// (`&self`), possibly on many threads at once — hence `Send + Sync` — unless the descriptor was
/// exported with `flags = WS_APP_SINGLE_THREADED`. It lives until [`App::shutdown`], after which it
/// is dropped.
pub trait App: Send + Sync + Sized + 'static {
    /// Builds the app once per process, before any request. An `Err` message rejects the load: it is
    /// copied (truncated to the server's buffer, at a UTF-8 boundary) into `WsInit::error_buf`.
    fn init(ctx: &InitContext<'_>) -> Result<Self, String>;

    /// Answers one request (PEP 3333's `application(environ, start_response)`).
    ///
    /// The returned [`Response`]'s status and headers are passed to the host's `start_response`
    /// (unless it was made with [`Response::started`]) and its [`Body`] becomes the `WsBody` the
    /// server pulls. A panic here is caught: it is logged as `panic in app: <message>` and the
    /// server answers 500.
    fn call(&self, req: &mut Request<'_>) -> Response;

    /// Runs once after the last request finished, just before the value is dropped.
    fn shutdown(&self) {}
}
