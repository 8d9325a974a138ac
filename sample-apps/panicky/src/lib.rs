//! `panicky`: panics on purpose, to show the panic boundary at work.
//!
//! - `/ok`: 200 `ok\n` (the same app keeps serving after a panic);
//! - `/panic-in-body`: 200 whose streamed body yields `first\n`, then panics on its second chunk
//!   (`next` returns `WS_ERR_APP`);
//! - any other path: `call` panics with "panicky app panicked on purpose" (the server answers 500).

use app_abi::{export_app, App, Body, InitContext, Request, Response};

/// The app: no state.
pub struct Panicky;

impl App for Panicky {
    fn init(_ctx: &InitContext<'_>) -> Result<Self, String> {
        Ok(Panicky)
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        match req.path() {
            b"/ok" => Response::text(200, "ok\n"),
            b"/panic-in-body" => {
                let chunks = (0..3).map(|i| {
                    if i == 1 {
                        panic!("panicky body panicked on its second chunk");
                    }
                    "first\n"
                });
                Response::text(200, Body::from_iter(chunks))
            }
            _ => panic!("panicky app panicked on purpose"),
        }
    }
}

export_app!(app, Panicky, name = "panicky", version = "1.0");
