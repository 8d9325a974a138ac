//! Files as response bodies: `http.response.pathsend` and `http.response.zerocopysend`, which the
//! server sends itself (ABI 1.2 `send_file`, through app-abi's `FileSend`), or the bridge reads
//! in chunks when trailers follow (a file the server sends is a sized body, which has no room for
//! them).

use super::*;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;

impl Channel {
    /// `http.response.pathsend`: the server sends the file at `path` (ABI 1.2 `send_file`).
    pub(super) fn pathsend(&self, message: &Bound<'_, PyAny>) -> PyResult<u8> {
        // The ASGI path send extension: the server sends the file; the path is opened
        // here, where a failure is the app's exception.
        let path: std::path::PathBuf = message.get_item("path")?.extract()?;
        let file = std::fs::File::open(&path)?;
        let mut st = self.shared.state();
        if st.closed {
            return Ok(SEND_DONE);
        }
        if !st.started || st.body_ended {
            return Err(PyRuntimeError::new_err(
                "http.response.pathsend must follow http.response.start and end the response",
            ));
        }
        st.file = Some(ResponseFile::new(
            file,
            0,
            None,
            WS_FILE_RANGES,
            st.wants_trailers,
        ));
        st.end_body();
        drop(st);
        self.shared.waker.wake();
        Ok(SEND_DONE)
    }

    /// `http.response.zerocopysend`: bytes of an open file. The last message of a response
    /// (`more_body` false) hands the file to the server, which sends it with `sendfile(2)`
    /// after what was queued before (or reads it in chunks where it cannot: after body bytes,
    /// on HTTP/2); one followed by more body is read here and queued as a body chunk, since a
    /// file the server sends ends the response. The descriptor is duplicated, so the app may
    /// close its file as soon as `send()` returns. Without `offset` the bytes start at the
    /// file's position, which moves past them (as `sendfile(2)` without an offset moves it).
    pub(super) fn zerocopysend(&self, message: &Bound<'_, PyAny>) -> PyResult<u8> {
        let py = message.py();
        let number = |key: &Bound<'_, PyString>| -> PyResult<Option<u64>> {
            field_or(message, key, None, |v| {
                v.extract().map(Some).map_err(|_| {
                    PyValueError::new_err(format!(
                        "http.response.zerocopysend: {key} must be a non-negative int"
                    ))
                })
            })
        };
        let offset = number(intern!(py, "offset"))?;
        let count = number(intern!(py, "count"))?;
        let more = flag(message, intern!(py, "more_body"))?;
        let object = field(message, intern!(py, "file"))?.ok_or_else(|| {
            PyValueError::new_err("http.response.zerocopysend needs 'file', an open file")
        })?;
        let fd: i32 = object.call_method0(intern!(py, "fileno"))?.extract()?;
        if fd < 0 {
            return Err(PyValueError::new_err(
                "http.response.zerocopysend: the file has no descriptor",
            ));
        }
        // SAFETY: `fd` is the descriptor of `object`, which this call holds a reference to, so it
        // stays open while it is duplicated here; the duplicate is this bridge's own.
        let file = std::fs::File::from(unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?);
        let offset = match offset {
            Some(offset) => offset,
            None => {
                // The duplicate shares the app's file position.
                let position = (&file).stream_position()?;
                let end = match count {
                    Some(count) => position.saturating_add(count),
                    None => file.metadata()?.len().max(position),
                };
                (&file).seek(SeekFrom::Start(end))?;
                position
            }
        };
        if more {
            let bytes = read_range(&file, offset, count)?;
            return self.push_body(bytes, true);
        }
        let mut st = self.shared.state();
        if st.closed {
            return Ok(SEND_DONE);
        }
        if !st.started || st.body_ended {
            return Err(PyRuntimeError::new_err(
                "http.response.zerocopysend must follow http.response.start, before the \
                 body ended",
            ));
        }
        st.file = Some(ResponseFile::new(file, offset, count, 0, st.wants_trailers));
        st.end_body();
        drop(st);
        self.shared.waker.wake();
        Ok(SEND_DONE)
    }
}

/// The file that ends a response's body.
pub(super) enum ResponseFile {
    /// Handed to the server (or read by app-abi where the server cannot take it).
    Send(FileSend),
    /// Read here in chunks: trailers follow.
    Read(FileChunks),
}

impl ResponseFile {
    /// Bytes `offset..offset + count` of `file` (`None`: to its end), with `send_file` flags.
    fn new(file: File, offset: u64, count: Option<u64>, flags: u32, trailers: bool) -> Self {
        if trailers {
            ResponseFile::Read(FileChunks {
                file,
                offset,
                end: count.map(|count| offset.saturating_add(count)),
            })
        } else {
            ResponseFile::Send(FileSend::new(file, offset, count, flags))
        }
    }
}

/// A file range read in chunks at explicit offsets.
pub(super) struct FileChunks {
    file: File,
    offset: u64,
    /// One past the last byte, `None`: the file's end.
    end: Option<u64>,
}

impl FileChunks {
    /// The next chunk into `buf`: false at the range's end (or the file's, if it ends first).
    pub(super) fn read(&mut self, buf: &mut Vec<u8>) -> std::io::Result<bool> {
        let want = self.end.map_or(READ_CHUNK as u64, |end| {
            (end.saturating_sub(self.offset)).min(READ_CHUNK as u64)
        });
        buf.resize(want as usize, 0);
        let n = if want == 0 {
            0
        } else {
            self.file.read_at(buf, self.offset)?
        };
        buf.truncate(n);
        self.offset += n as u64;
        Ok(n > 0)
    }
}

/// Bytes `offset..offset + count` of `file` (`None`: to its end; fewer if it ends first), read at
/// explicit offsets: the app's file position is not moved.
fn read_range(file: &std::fs::File, offset: u64, count: Option<u64>) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let end = count.map(|count| offset.saturating_add(count));
    let mut at = offset;
    while end.is_none_or(|end| at < end) {
        let want = end.map_or(READ_CHUNK as u64, |end| (end - at).min(READ_CHUNK as u64));
        let n = file.read_at(&mut chunk[..want as usize], at)?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
        at += n as u64;
    }
    Ok(bytes)
}
