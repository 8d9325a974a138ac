//! [`Recording`]: what a queued request's app asked of the server while it ran on a thread that
//! is not the request's ([`crate::handoff`]), kept to be sent later from the request's own
//! `next` ([`crate::exchange::Exchange::replay`]), where the ABI allows host I/O.
//!
//! The head is checked here by the rules the server's `start_response` applies, so that an app
//! gets the same `ValueError` inside `start_response` as when its head goes to the server
//! straight away; a file handed over (`wsgi.file_wrapper`) is checked as the server's
//! `send_file` checks it (a regular file, the range inside it) and its descriptor duplicated,
//! since the app closes its file when its response completes.

use app_abi::raw::WS_LENGTH_UNKNOWN;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The statuses the server lets an app send (its `response_fields`).
const APP_STATUSES: std::ops::RangeInclusive<u16> = 200..=599;

/// A response head the app set, as the server will be asked for it.
pub(crate) struct RecordedHead {
    pub(crate) status: u16,
    pub(crate) reason: Vec<u8>,
    pub(crate) headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) flags: u32,
}

/// A file range the app handed over, for the server's `send_file`.
pub(crate) struct RecordedFile {
    pub(crate) fd: OwnedFd,
    pub(crate) offset: u64,
    pub(crate) length: u64,
    pub(crate) flags: u32,
}

/// Everything a queued request's app asked of the server, in order: head, `write()` bytes, a file.
#[derive(Default)]
pub(crate) struct Recording {
    pub(crate) head: Option<RecordedHead>,
    pub(crate) written: Vec<u8>,
    pub(crate) file: Option<RecordedFile>,
}

/// `token = 1*tchar` (RFC 9110 §5.6.2).
fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A field value the server sends: no CR, LF, NUL, nor any control byte but HTAB.
fn is_value(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Whether the server's `start_response` would take this head (the checks of its
/// `response_fields`; hop-by-hop names are dropped by the bridge before this).
pub(crate) fn head_is_valid(status: u16, reason: &[u8], headers: &[(Vec<u8>, Vec<u8>)]) -> bool {
    let mut length: Option<&[u8]> = None;
    APP_STATUSES.contains(&status)
        && is_value(reason)
        && headers.iter().all(|(name, value)| {
            let field_ok = is_token(name) && is_value(value);
            if field_ok && name.eq_ignore_ascii_case(b"content-length") {
                let digits = value.trim_ascii();
                let number_ok = !digits.is_empty() && digits.iter().all(u8::is_ascii_digit);
                let same = length.is_none_or(|l| l == digits);
                length = Some(digits);
                return number_ok && same;
            }
            field_ok
        })
}

/// The app's file `fd` from `offset` for `length` bytes ([`WS_LENGTH_UNKNOWN`]: to its end),
/// duplicated, if the server's `send_file` would take it: a regular file, the range inside it.
pub(crate) fn file(fd: i32, offset: u64, length: u64, flags: u32) -> Option<RecordedFile> {
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is the app's open file (its `fileno()`), alive during this call, which only
    // duplicates it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let owned = borrowed.try_clone_to_owned().ok()?;
    let meta = File::from(owned.as_fd().try_clone_to_owned().ok()?)
        .metadata()
        .ok()?;
    let size = meta.len();
    let inside = offset <= size && (length == WS_LENGTH_UNKNOWN || length <= size - offset);
    (meta.is_file() && inside).then_some(RecordedFile {
        fd: owned,
        offset,
        length,
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::head_is_valid;

    fn h(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn heads_are_checked_as_the_server_checks_them() {
        assert!(head_is_valid(
            200,
            b"OK",
            &h(&[("Content-Type", "text/plain")])
        ));
        assert!(head_is_valid(599, b"", &h(&[("Content-Length", "5")])));
        assert!(head_is_valid(
            200,
            b"OK",
            &h(&[("Content-Length", "5"), ("content-length", "5")])
        ));
        assert!(!head_is_valid(199, b"", &[]));
        assert!(!head_is_valid(600, b"", &[]));
        assert!(!head_is_valid(200, b"O\nK", &[]));
        assert!(!head_is_valid(200, b"OK", &h(&[("Bad Name", "x")])));
        assert!(!head_is_valid(200, b"OK", &h(&[("X", "a\r\nb")])));
        assert!(!head_is_valid(200, b"OK", &h(&[("Content-Length", "x")])));
        assert!(!head_is_valid(
            200,
            b"OK",
            &h(&[("Content-Length", "5"), ("Content-Length", "6")])
        ));
    }
}
