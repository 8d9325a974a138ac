//! [`AbiError`]: the negative `WS_ERR_*` codes of the header as a Rust error.

use crate::raw::{
    WS_ERR_APP, WS_ERR_BAD_BODY, WS_ERR_CLIENT_GONE, WS_ERR_INVALID, WS_ERR_STATE, WS_ERR_TIMEOUT,
    WS_ERR_TOO_LARGE, WS_OK,
};
use std::fmt;
use std::io;

/// A failure reported by a host callback (`read`, `start_response`, `write`): one `WS_ERR_*` code.
///
/// [`AbiError::code`] gives the raw code back. When it travels inside an [`io::Error`] (from
/// [`crate::BodyReader`]), [`AbiError::from_io`] recovers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AbiError {
    /// `WS_ERR_CLIENT_GONE`: the client closed the connection or a write to it failed.
    ClientGone,
    /// `WS_ERR_TOO_LARGE`: the request body exceeds the server's `--max-body`.
    TooLarge,
    /// `WS_ERR_TIMEOUT`: the client was too slow.
    Timeout,
    /// `WS_ERR_BAD_BODY`: malformed chunked encoding, or a body shorter than declared.
    BadBody,
    /// `WS_ERR_INVALID`: invalid status, header name or header value.
    Invalid,
    /// `WS_ERR_STATE`: a callback used out of order — or, on the Rust side, a callback the host did
    /// not provide (a null function pointer).
    State,
    /// `WS_ERR_APP`: the app failed.
    App,
    /// A code this version of the crate does not know (added by a later minor ABI version).
    Other(i32),
}

impl AbiError {
    /// Maps a callback's return code: `WS_OK` is `Ok(())`, anything else an error.
    pub fn check(code: i32) -> Result<(), AbiError> {
        match code {
            WS_OK => Ok(()),
            WS_ERR_CLIENT_GONE => Err(AbiError::ClientGone),
            WS_ERR_TOO_LARGE => Err(AbiError::TooLarge),
            WS_ERR_TIMEOUT => Err(AbiError::Timeout),
            WS_ERR_BAD_BODY => Err(AbiError::BadBody),
            WS_ERR_INVALID => Err(AbiError::Invalid),
            WS_ERR_STATE => Err(AbiError::State),
            WS_ERR_APP => Err(AbiError::App),
            other => Err(AbiError::Other(other)),
        }
    }

    /// The raw `WS_ERR_*` code.
    pub fn code(self) -> i32 {
        match self {
            AbiError::ClientGone => WS_ERR_CLIENT_GONE,
            AbiError::TooLarge => WS_ERR_TOO_LARGE,
            AbiError::Timeout => WS_ERR_TIMEOUT,
            AbiError::BadBody => WS_ERR_BAD_BODY,
            AbiError::Invalid => WS_ERR_INVALID,
            AbiError::State => WS_ERR_STATE,
            AbiError::App => WS_ERR_APP,
            AbiError::Other(code) => code,
        }
    }

    /// The `AbiError` inside an [`io::Error`] made by this crate, if any.
    pub fn from_io(err: &io::Error) -> Option<AbiError> {
        err.get_ref()?.downcast_ref::<AbiError>().copied()
    }

    fn io_kind(self) -> io::ErrorKind {
        match self {
            AbiError::ClientGone => io::ErrorKind::ConnectionAborted,
            AbiError::Timeout => io::ErrorKind::TimedOut,
            AbiError::TooLarge | AbiError::BadBody => io::ErrorKind::InvalidData,
            AbiError::Invalid => io::ErrorKind::InvalidInput,
            AbiError::State => io::ErrorKind::Unsupported,
            AbiError::App | AbiError::Other(_) => io::ErrorKind::Other,
        }
    }
}

impl fmt::Display for AbiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            AbiError::ClientGone => "the client closed the connection (WS_ERR_CLIENT_GONE)",
            AbiError::TooLarge => "the request body exceeds the server's limit (WS_ERR_TOO_LARGE)",
            AbiError::Timeout => "the client was too slow (WS_ERR_TIMEOUT)",
            AbiError::BadBody => "malformed or truncated request body (WS_ERR_BAD_BODY)",
            AbiError::Invalid => "invalid status, header name or value (WS_ERR_INVALID)",
            AbiError::State => {
                "callback used out of order or not provided by the host (WS_ERR_STATE)"
            }
            AbiError::App => "the app failed (WS_ERR_APP)",
            AbiError::Other(code) => return write!(f, "unknown host error code {code}"),
        };
        f.write_str(text)
    }
}

impl std::error::Error for AbiError {}

impl From<AbiError> for io::Error {
    fn from(err: AbiError) -> io::Error {
        io::Error::new(err.io_kind(), err)
    }
}
