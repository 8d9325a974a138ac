//! `export_service!` in both spellings: a factory path with the crate's name and version, and a
//! closure with explicit ones — each a `#[no_mangle]` descriptor the server can load.

use bytes::Bytes;
use std::convert::Infallible;
use std::ffi::CStr;
use std::future::{ready, Ready};
use std::task::{Context, Poll};

/// The smallest tower service: "ok" for every request.
#[derive(Clone)]
struct Ok200;

impl<B> tower_service::Service<http::Request<B>> for Ok200 {
    type Response = http::Response<http_body_util::Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: http::Request<B>) -> Self::Future {
        ready(Ok(http::Response::new(Bytes::from_static(b"ok").into())))
    }
}

fn ok200() -> Ok200 {
    Ok200
}

mod by_path {
    webserver_tower::export_service!(by_path_app, super::ok200);
}

mod by_closure {
    webserver_tower::export_service!(
        by_closure_app,
        || super::Ok200,
        name = "named",
        version = "2.1"
    );
}

// The macro's statics live in an anonymous const block (so two exports in one crate cannot
// collide on helper names); they are reached here the way the server reaches them, by symbol.
extern "C" {
    static by_path_app: app_abi::raw::WsApp;
    static by_closure_app: app_abi::raw::WsApp;
}

fn text(p: *const core::ffi::c_char) -> &'static str {
    // SAFETY: the macro stores NUL-terminated static strings.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap()
}

#[test]
fn both_spellings_export_a_1_1_descriptor() {
    use app_abi::raw::{WS_ABI_MAJOR, WS_ABI_MINOR, WS_APP_MAGIC};
    // SAFETY: both symbols are the immutable descriptors the macros above defined.
    let (by_path, by_closure) = unsafe { (&by_path_app, &by_closure_app) };
    for (app, name, version) in [
        (by_path, "webserver-tower", env!("CARGO_PKG_VERSION")),
        (by_closure, "named", "2.1"),
    ] {
        assert_eq!(app.magic, WS_APP_MAGIC);
        assert_eq!((app.abi_major, app.abi_minor), (WS_ABI_MAJOR, WS_ABI_MINOR));
        assert_eq!(text(app.name), name);
        assert_eq!(text(app.version), version);
        assert!(app.init.is_some() && app.call.is_some() && app.shutdown.is_some());
    }
}
