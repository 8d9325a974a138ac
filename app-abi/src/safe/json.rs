//! JSON over serde, behind the optional `json` feature (without it app-abi depends on nothing):
//! [`Json`] bodies from any `serde::Serialize`, [`Request::read_json`] into any
//! `serde::de::DeserializeOwned`, and [`JsonBodyError::to_response`] for the answer a bad body
//! deserves.
//!
//! ```
//! use app_abi::{export_app, App, InitContext, Json, Request, Response};
//!
//! #[derive(serde::Deserialize, serde::Serialize)]
//! struct Item { name: String, qty: u32 }
//!
//! struct Shop;
//!
//! impl App for Shop {
//!     fn init(_ctx: &InitContext<'_>) -> Result<Self, String> {
//!         Ok(Shop)
//!     }
//!     fn call(&self, req: &mut Request<'_>) -> Response {
//!         match req.read_json::<Item>() {     // a bad body: 400 (413 past --max-body)
//!             Ok(item) => Response::json(201, Json(&item)),
//!             Err(e) => e.to_response(),
//!         }
//!     }
//! }
//!
//! export_app!(app, Shop, name = "shop", version = "1.0");
//! # fn main() {
//! #     let item = Item { name: "tea".into(), qty: 2 };
//! #     let r = Response::json(201, Json(&item));
//! #     assert_eq!(r.body_ref().length_hint(), br#"{"name":"tea","qty":2}"#.len() as u64);
//! # }
//! ```

use super::error::AbiError;
use super::request::Request;
use super::response::{Body, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::io;

/// A value sent as a JSON body: `Response::json(200, Json(&value))`.
///
/// ```
/// use app_abi::{Json, Response};
///
/// let r = Response::json(200, Json(serde_json::json!({"name": "hello", "n": 5})));
/// assert_eq!(r.get_header("content-type"), Some("application/json"));
/// assert_eq!(r.body_ref().length_hint(), br#"{"n":5,"name":"hello"}"#.len() as u64);
/// ```
///
/// Converting into a [`Body`] panics if `T`'s `Serialize` fails (only a map with non-string keys
/// or a hand-written impl that errs can); inside `App::call` that panic becomes a logged 500. Use
/// [`Response::try_json`] to handle it yourself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: Serialize> From<Json<T>> for Body {
    fn from(json: Json<T>) -> Body {
        match serde_json::to_vec(&json.0) {
            Ok(bytes) => Body::from_vec(bytes),
            Err(e) => panic!("serializing the JSON response body failed: {e}"),
        }
    }
}

impl Response {
    /// `application/json` from any `Serialize`, or the serializer's error.
    ///
    /// ```
    /// let r = app_abi::Response::try_json(201, &vec![1, 2, 3]).unwrap();
    /// assert_eq!((r.status_code(), r.body_ref().length_hint()), (201, 7));
    /// ```
    pub fn try_json<T: Serialize + ?Sized>(
        status: u16,
        value: &T,
    ) -> Result<Response, serde_json::Error> {
        Ok(Response::json(status, serde_json::to_vec(value)?))
    }
}

/// Why [`Request::read_json`] failed.
#[derive(Debug)]
pub enum JsonBodyError {
    /// Reading the body failed (too large, malformed, the client went away, ...).
    Read(io::Error),
    /// The body is not JSON of the expected shape.
    Parse(serde_json::Error),
}

impl JsonBodyError {
    /// The response this error calls for: 413 past the server's `--max-body`, 408 for a client
    /// too slow, 400 for a body that is malformed or not the JSON expected (with the reason).
    ///
    /// ```
    /// let err = serde_json::from_slice::<u32>(b"nope").unwrap_err();
    /// let r = app_abi::JsonBodyError::Parse(err).to_response();
    /// assert_eq!(r.status_code(), 400);
    /// ```
    pub fn to_response(&self) -> Response {
        let status = match self {
            JsonBodyError::Read(e) => match AbiError::from_io(e) {
                Some(AbiError::TooLarge) => 413,
                Some(AbiError::Timeout) => 408,
                _ => 400,
            },
            JsonBodyError::Parse(_) => 400,
        };
        Response::text(status, format!("{self}\n"))
    }
}

impl fmt::Display for JsonBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonBodyError::Read(e) => write!(f, "cannot read the request body: {e}"),
            JsonBodyError::Parse(e) => write!(f, "the request body is not the JSON expected: {e}"),
        }
    }
}

impl std::error::Error for JsonBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JsonBodyError::Read(e) => Some(e),
            JsonBodyError::Parse(e) => Some(e),
        }
    }
}

impl Request<'_> {
    /// Reads the whole body ([`Request::read_body`]) and deserializes it as JSON.
    pub fn read_json<T: DeserializeOwned>(&mut self) -> Result<T, JsonBodyError> {
        let body = self.read_body().map_err(JsonBodyError::Read)?;
        serde_json::from_slice(&body).map_err(JsonBodyError::Parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::{WsHost, WsPair, WsRequest, WS_ERR_TOO_LARGE, WS_OK};
    use core::ffi::c_void;
    use std::cell::Cell;

    /// The body the fake host reads from: `io` points to it; `Err` makes `read` fail.
    struct Input {
        bytes: Result<&'static [u8], i32>,
        pos: Cell<usize>,
    }

    unsafe extern "C" fn read(io: *mut c_void, buf: *mut u8, cap: usize, n: *mut usize) -> i32 {
        // SAFETY: the tests pass a live `Input` as io; buf and n are valid per the ABI.
        unsafe {
            let input = &*io.cast::<Input>();
            let bytes = match input.bytes {
                Ok(bytes) => bytes,
                Err(code) => return code,
            };
            let k = (bytes.len() - input.pos.get()).min(cap);
            core::ptr::copy_nonoverlapping(bytes[input.pos.get()..].as_ptr(), buf, k);
            input.pos.set(input.pos.get() + k);
            *n = k;
        }
        WS_OK
    }

    static HOST: WsHost = WsHost {
        size: core::mem::size_of::<WsHost>() as u32,
        reserved: 0,
        read: Some(read),
        start_response: None,
        write: None,
        log: None,
        try_read: None,
        waker_new: None,
        waker_wake: None,
        waker_free: None,
        ..WsHost::EMPTY
    };

    fn read_json_from<T: DeserializeOwned>(
        bytes: Result<&'static [u8], i32>,
    ) -> Result<T, JsonBodyError> {
        let input = Input {
            bytes,
            pos: Cell::new(0),
        };
        let environ: [WsPair; 0] = [];
        let raw = WsRequest {
            size: core::mem::size_of::<WsRequest>() as u32,
            flags: 0,
            environ: environ.as_ptr(),
            environ_len: 0,
            io: &input as *const Input as *mut c_void,
            host: &HOST,
            log_ctx: core::ptr::null(),
        };
        // SAFETY: raw, its host and the input it reads live across this call.
        let mut req = unsafe { Request::from_raw(&raw) };
        req.read_json()
    }

    #[test]
    fn body_json_and_its_errors() {
        let v: serde_json::Value = read_json_from(Ok(br#"{"qty": 3}"#)).unwrap();
        assert_eq!(v["qty"], 3);
        let bad = read_json_from::<serde_json::Value>(Ok(b"{")).unwrap_err();
        assert_eq!(bad.to_response().status_code(), 400);
        let wrong = read_json_from::<u32>(Ok(b"\"x\"")).unwrap_err();
        assert!(
            wrong.to_string().contains("not the JSON expected"),
            "{wrong}"
        );
        let big = read_json_from::<u32>(Err(WS_ERR_TOO_LARGE)).unwrap_err();
        assert_eq!(big.to_response().status_code(), 413);
    }

    #[test]
    #[should_panic(expected = "serializing the JSON response body failed")]
    fn unserializable_json_body_panics_with_the_reason() {
        let mut map = std::collections::HashMap::new();
        map.insert((1, 2), "tuple keys are not JSON");
        let _ = Body::from(Json(map));
    }
}
