//! Files the server sends for a tower service (ABI 1.2 `send_file`): [`file_response`] marks a
//! response whose body is a file; the adapter sends the head and hands the file to the server,
//! which sends it with `sendfile(2)`, answers Range (206/416), adds `ETag`/`Last-Modified` and
//! answers conditional requests with 304 — no byte passes through the runtime. On a server older
//! than 1.2 the file is read in chunks instead.
//!
//! A body type cannot say "I am a file" once axum has boxed it, so the mark is a response
//! extension ([`SendFile`]); the body itself is ignored. tower-http's `ServeDir` bodies are
//! streamed as before: use `file_response` (or the server's `--static`) for large files.

use app_abi::FileSend;
use std::fs::File;
use std::sync::{Arc, Mutex};

/// The response extension that carries the file ([`file_response`] inserts it).
#[derive(Clone, Debug)]
pub struct SendFile(Arc<Mutex<Option<FileSend>>>);

impl SendFile {
    /// The whole `file`, with Range and validators answered by the server.
    pub fn new(file: File) -> SendFile {
        SendFile::with(FileSend::new(
            file,
            0,
            None,
            app_abi::raw::WS_FILE_RANGES | app_abi::raw::WS_FILE_VALIDATORS,
        ))
    }

    /// Any range and flags (see `app_abi::FileSend::new`).
    pub fn with(file: FileSend) -> SendFile {
        SendFile(Arc::new(Mutex::new(Some(file))))
    }

    /// The file, once (the adapter takes it when the head goes out).
    pub(crate) fn take(&self) -> Option<FileSend> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// A `200` whose body the server sends from `file`; set `Content-Type` (and other headers) on
/// it as on any response. With axum:
///
/// ```ignore
/// async fn report() -> axum::response::Response {
///     let file = std::fs::File::open("/srv/report.pdf").unwrap();
///     let mut response = webserver_tower::file_response(file);
///     response.headers_mut().insert("content-type", "application/pdf".parse().unwrap());
///     response
/// }
/// ```
pub fn file_response<B: Default>(file: File) -> http::Response<B> {
    let mut response = http::Response::new(B::default());
    response.extensions_mut().insert(SendFile::new(file));
    response
}
