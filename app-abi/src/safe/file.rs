//! Files as response bodies (ABI 1.2 `send_file`): the server sends the bytes from the file
//! (`sendfile(2)`), so none pass through the app and a slow client holds no thread.
//!
//! [`Body::file`] is the way for a Rust app: the head goes out as the [`crate::Response`] says,
//! then the body's first `next` hands the file over ([`BodyIo::send_file`]). On a server older
//! than 1.2, or one that refuses the file, the same body reads it in chunks instead, so an app
//! need not check the version. [`FileSend`] is that body, for bridges that hold one in their own
//! body (the ASGI bridge's `http.response.pathsend`).

use super::deferred::{BodyIo, DeferredBody, Next};
use super::error::AbiError;
use super::response::Body;
use crate::raw::{WS_FILE_RANGES, WS_FILE_VALIDATORS, WS_LENGTH_UNKNOWN};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::FileExt;

/// Bytes read per chunk when the server cannot take the file.
const CHUNK: usize = 64 * 1024;

impl BodyIo<'_> {
    /// Hands the rest of the response to the server (ABI 1.2 `send_file`): bytes
    /// `offset..offset + length` of `file` (`None`: to its end), after the head
    /// ([`BodyIo::start_response`], or the `Response`'s). The server duplicates the descriptor.
    /// `flags`: [`WS_FILE_RANGES`], [`WS_FILE_VALIDATORS`]. [`AbiError::State`] from a server
    /// without `send_file` (older than 1.2) or out of order; [`AbiError::Invalid`] for a file
    /// that is not regular or a range outside it. On an error nothing was sent.
    pub fn send_file(
        &mut self,
        file: BorrowedFd<'_>,
        offset: u64,
        length: Option<u64>,
        flags: u32,
    ) -> Result<(), AbiError> {
        let f = self
            .host()
            .has_send_file()
            .then_some(self.host().send_file)
            .flatten()
            .ok_or(AbiError::State)?;
        let length = length.unwrap_or(WS_LENGTH_UNKNOWN);
        // SAFETY: `io` is the running request's handle on this thread (`BodyIo::new`'s
        // contract); the descriptor is open (borrowed) for the call, which only duplicates it.
        AbiError::check(unsafe { f(self.raw_io(), file.as_raw_fd(), offset, length, flags) })
    }
}

impl Body {
    /// The whole of `file`, sent by the server (ABI 1.2 `send_file`, with Range answered and
    /// `ETag`/`Last-Modified` added for a 200), or read in chunks by a server without it. Set
    /// `Content-Type` on the response; Content-Length is the server's.
    ///
    /// ```no_run
    /// # use app_abi::{Body, Response};
    /// let report = std::fs::File::open("/srv/report.pdf").unwrap();
    /// let r = Response::new(200).header("Content-Type", "application/pdf").body(Body::file(report));
    /// ```
    pub fn file(file: File) -> Body {
        Body::deferred(FileSend::new(
            file,
            0,
            None,
            WS_FILE_RANGES | WS_FILE_VALIDATORS,
        ))
    }

    /// `length` bytes of `file` from `offset` (`None`: to its end), sent as [`Body::file`] is;
    /// a Range is answered relative to this part.
    pub fn file_range(file: File, offset: u64, length: Option<u64>) -> Body {
        Body::deferred(FileSend::new(file, offset, length, WS_FILE_RANGES))
    }
}

/// A file range as a [`DeferredBody`]: handed to the server on the first `next`, else read in
/// chunks (after the head, which the response or its bridge sent before).
#[derive(Debug)]
pub struct FileSend {
    file: File,
    offset: u64,
    /// One past the last byte, `None`: the end of the file.
    end: Option<u64>,
    flags: u32,
    tried: bool,
    chunk: Vec<u8>,
}

impl FileSend {
    /// Bytes `offset..offset + length` of `file` (`None`: to its end), with `send_file` flags.
    pub fn new(file: File, offset: u64, length: Option<u64>, flags: u32) -> FileSend {
        FileSend {
            file,
            offset,
            end: length.map(|n| offset.saturating_add(n)),
            flags,
            tried: false,
            chunk: Vec::new(),
        }
    }
}

impl DeferredBody for FileSend {
    fn next<'s>(&'s mut self, io: &mut BodyIo<'_>) -> Next<'s> {
        if !self.tried {
            self.tried = true;
            let length = self.end.map(|end| end - self.offset);
            match io.send_file(self.file.as_fd(), self.offset, length, self.flags) {
                Ok(()) => return Next::End,
                // An older server, or a file it will not take: read it here.
                Err(AbiError::State | AbiError::Invalid) => {}
                Err(_) => return Next::Error,
            }
        }
        let want = match self.end {
            Some(end) => (end.saturating_sub(self.offset)).min(CHUNK as u64) as usize,
            None => CHUNK,
        };
        if want == 0 {
            return Next::End;
        }
        self.chunk.resize(want, 0);
        match self.file.read_at(&mut self.chunk, self.offset) {
            Ok(0) if self.end.is_none() => Next::End,
            Ok(0) => {
                io.logger()
                    .error("the file is shorter than the range the response sends");
                Next::Error
            }
            Ok(n) => {
                self.offset += n as u64;
                Next::Chunk(&self.chunk[..n])
            }
            Err(e) => {
                io.logger()
                    .error(&format!("reading the response's file: {e}"));
                Next::Error
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::{WsHost, WS_HOST_SIZE_V1_1, WS_OK};
    use crate::Logger;
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};

    static HANDED: AtomicU64 = AtomicU64::new(0);

    unsafe extern "C" fn send_file(
        _io: *mut core::ffi::c_void,
        _fd: i32,
        offset: u64,
        length: u64,
        flags: u32,
    ) -> i32 {
        assert_eq!((length, flags), (5, WS_FILE_RANGES));
        HANDED.store(offset, Ordering::SeqCst);
        WS_OK
    }

    fn file() -> File {
        let path = std::env::temp_dir().join(format!("app-abi-file-{}", std::process::id()));
        File::create(&path)
            .unwrap()
            .write_all(b"0123456789")
            .unwrap();
        let file = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    /// Drains `body` with `host`: the chunks it gave, or `None` if it handed the file over.
    fn drain(host: &WsHost, mut body: FileSend) -> Option<Vec<u8>> {
        // SAFETY: a fake host with no log callback; the logger only reads its vtable.
        let logger = unsafe { Logger::from_raw(host, core::ptr::null()) };
        // SAFETY: the fake host answers with any io (it ignores it).
        let mut io = unsafe { BodyIo::new(host, core::ptr::null_mut(), logger) };
        let mut out = Vec::new();
        loop {
            match body.next(&mut io) {
                Next::Chunk(c) => out.extend_from_slice(c),
                Next::End if out.is_empty() && HANDED.load(Ordering::SeqCst) != 0 => return None,
                Next::End => return Some(out),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_1_2_host_takes_the_file_and_an_older_one_gets_its_chunks() {
        let host = WsHost {
            send_file: Some(send_file),
            ..WsHost::EMPTY
        };
        assert_eq!(
            drain(&host, FileSend::new(file(), 3, Some(5), WS_FILE_RANGES)),
            None
        );
        assert_eq!(HANDED.swap(0, Ordering::SeqCst), 3);
        let old = WsHost {
            size: WS_HOST_SIZE_V1_1,
            send_file: Some(send_file),
            ..WsHost::EMPTY
        };
        let chunks = drain(&old, FileSend::new(file(), 3, Some(5), WS_FILE_RANGES));
        assert_eq!(chunks.as_deref(), Some(&b"34567"[..]));
        let rest = drain(&old, FileSend::new(file(), 8, None, 0));
        assert_eq!(rest.as_deref(), Some(&b"89"[..]));
    }
}
