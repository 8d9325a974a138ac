//! A file an app hands to the server for its response body (ABI 1.2 `send_file`): what the
//! server answers with, given the app's status and validators and the request's conditional
//! and Range headers — the `--static` rules (`conditional.rs`) applied to the app's byte range.
//!
//! The app's descriptor is duplicated here (`F_DUPFD_CLOEXEC`): the app may close its own as soon
//! as the call returns, and the duplicate keeps the inode until the body is out. Only a 200 is
//! revalidated (304) or ranged (206/416): a response the app made partial or conditional itself
//! is sent as it said. The design page is `docs/src/design/send-file.md`.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;

use app_abi::raw::{WS_FILE_RANGES, WS_FILE_VALIDATORS, WS_LENGTH_UNKNOWN};

use super::conditional::{not_modified, parse_date, part, Part, Validators};

/// The request headers the answer depends on (from the environ: repeats are joined with `, `,
/// so several `Range` headers read as several ranges, and get the whole range).
#[derive(Debug, Default)]
pub(crate) struct Conditions<'r> {
    pub(crate) is_head: bool,
    range: Option<&'r [u8]>,
    if_range: Option<&'r [u8]>,
    if_none_match: Option<&'r [u8]>,
    if_modified_since: Option<&'r [u8]>,
}

impl<'r> Conditions<'r> {
    /// From a request's environ (`HTTP_RANGE`, ...).
    pub(crate) fn from_environ(pairs: impl Iterator<Item = (&'r [u8], &'r [u8])>) -> Self {
        let mut conditions = Conditions::default();
        for (name, value) in pairs {
            let slot = match name {
                b"REQUEST_METHOD" => {
                    conditions.is_head = value == b"HEAD";
                    continue;
                }
                b"HTTP_RANGE" => &mut conditions.range,
                b"HTTP_IF_RANGE" => &mut conditions.if_range,
                b"HTTP_IF_NONE_MATCH" => &mut conditions.if_none_match,
                b"HTTP_IF_MODIFIED_SINCE" => &mut conditions.if_modified_since,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        conditions
    }

    /// Those of an app whose fields are in the request parts only, not in its environ (ABI
    /// 1.3 `WS_REQ_FIELDS_IN_PARTS`): `Range`, ... from `fields` as received, and whether it
    /// is a HEAD from the parts' `method` (the environ of a `WS_APP_NO_ENVIRON` app is empty).
    pub(crate) fn with_parts(
        mut self,
        method: &[u8],
        fields: impl Iterator<Item = (&'r [u8], &'r [u8])>,
    ) -> Self {
        self.is_head = method == b"HEAD";
        for (name, value) in fields {
            let slot = if name.eq_ignore_ascii_case(b"range") {
                &mut self.range
            } else if name.eq_ignore_ascii_case(b"if-range") {
                &mut self.if_range
            } else if name.eq_ignore_ascii_case(b"if-none-match") {
                &mut self.if_none_match
            } else if name.eq_ignore_ascii_case(b"if-modified-since") {
                &mut self.if_modified_since
            } else {
                continue;
            };
            slot.get_or_insert(value);
        }
        self
    }
}

/// The app's response head as far as the answer depends on it.
#[derive(Debug, Default)]
pub(crate) struct AppHead {
    pub(crate) status: u16,
    pub(crate) etag: Option<Vec<u8>>,
    pub(crate) last_modified: Option<Vec<u8>>,
}

/// What the server answers with.
#[derive(Debug)]
pub(crate) struct Handoff {
    pub(crate) status: u16,
    /// Fields the server adds to the app's.
    pub(crate) headers: Vec<(&'static str, String)>,
    /// The Content-Length (of a HEAD's GET, too).
    pub(crate) length: u64,
    /// The file and its bytes `first..end` to send; `None`: no body (304, 416, HEAD, empty).
    pub(crate) body: Option<(File, u64, u64)>,
}

/// Why a hand-off was refused (`WS_ERR_INVALID`); the text goes to the log, naming the app.
#[derive(Debug)]
pub(crate) enum Refused {
    Flags(u32),
    Descriptor(io::Error),
    NotRegular,
    OutOfRange { offset: u64, length: u64, size: u64 },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Flags(flags) => write!(
                f,
                "unknown flag bits {flags:#x} (WS_FILE_RANGES and WS_FILE_VALIDATORS are known)"
            ),
            Refused::Descriptor(e) => write!(f, "the descriptor is not an open file: {e}"),
            Refused::NotRegular => f.write_str("the descriptor is not a regular file"),
            Refused::OutOfRange {
                offset,
                length,
                size,
            } => write!(
                f,
                "bytes {offset}+{length} are not all in the file ({size} bytes)"
            ),
        }
    }
}

/// The answer to a request whose app set `app` and handed over `length` bytes (or up to the
/// end: `WS_LENGTH_UNKNOWN`) of `fd` from `offset`.
pub(crate) fn hand_off(
    fd: BorrowedFd<'_>,
    (offset, length): (u64, u64),
    flags: u32,
    app: &AppHead,
    request: &Conditions<'_>,
) -> Result<Handoff, Refused> {
    if flags & !(WS_FILE_RANGES | WS_FILE_VALIDATORS) != 0 {
        return Err(Refused::Flags(flags));
    }
    let file = File::from(fd.try_clone_to_owned().map_err(Refused::Descriptor)?);
    let meta = file.metadata().map_err(Refused::Descriptor)?;
    if !meta.is_file() {
        return Err(Refused::NotRegular);
    }
    let size = meta.len();
    let out_of_range = || Refused::OutOfRange {
        offset,
        length,
        size,
    };
    let available = size.checked_sub(offset).ok_or_else(out_of_range)?;
    let len = if length == WS_LENGTH_UNKNOWN {
        available
    } else if length <= available {
        length
    } else {
        return Err(out_of_range());
    };

    let mut headers = Vec::new();
    let own = meta
        .modified()
        .ok()
        .filter(|_| flags & WS_FILE_VALIDATORS != 0)
        .map(|modified| Validators::new(modified, size));
    let etag = match (&app.etag, &own) {
        (Some(etag), _) => String::from_utf8_lossy(etag).into_owned(),
        (None, Some(own)) => {
            headers.push(("ETag", own.etag.clone()));
            own.etag.clone()
        }
        // Matches only `If-None-Match: *`.
        (None, None) => String::new(),
    };
    let modified = match (&app.last_modified, &own) {
        (Some(date), _) => parse_date(date),
        (None, Some(own)) => {
            headers.push(("Last-Modified", own.last_modified()));
            Some(own.modified)
        }
        (None, None) => None,
    };
    // No date matches u64::MAX: without Last-Modified, If-Modified-Since never holds.
    let validators = Validators {
        etag,
        modified: modified.unwrap_or(u64::MAX),
    };
    let (status, length, bytes) =
        answer(app.status, len, flags, &validators, request, &mut headers);
    Ok(Handoff {
        status,
        headers,
        length,
        body: bytes
            .filter(|&(first, end)| first < end)
            .map(|(first, end)| (file, offset + first, offset + end)),
    })
}

/// Status, Content-Length and the bytes to send (relative to the app's range of `len`).
fn answer(
    status: u16,
    len: u64,
    flags: u32,
    validators: &Validators,
    request: &Conditions<'_>,
    headers: &mut Vec<(&'static str, String)>,
) -> (u16, u64, Option<(u64, u64)>) {
    let whole = (status, len, (!request.is_head).then_some((0, len)));
    if status != 200 {
        return whole;
    }
    if not_modified(request.if_none_match, request.if_modified_since, validators) {
        return (304, 0, None);
    }
    if flags & WS_FILE_RANGES == 0 {
        return whole;
    }
    headers.push(("Accept-Ranges", "bytes".to_owned()));
    // HEAD is answered as GET would be without a range (RFC 9110 §14.2: Range is GET's).
    if request.is_head {
        return whole;
    }
    match part(request.range, request.if_range, len, validators) {
        Part::Whole => whole,
        Part::Range { first, last } => {
            headers.push(("Content-Range", format!("bytes {first}-{last}/{len}")));
            (206, last - first + 1, Some((first, last + 1)))
        }
        Part::Unsatisfiable => {
            headers.push(("Content-Range", format!("bytes */{len}")));
            (416, 0, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    fn file(tag: &str, bytes: &[u8]) -> File {
        let path = std::env::temp_dir().join(format!("ws-handoff-{tag}-{}", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        let file = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    fn answer(
        file: &File,
        range: (u64, u64),
        flags: u32,
        app: &AppHead,
        headers: &[(&[u8], &[u8])],
    ) -> Result<Handoff, Refused> {
        let request = Conditions::from_environ(headers.iter().copied());
        hand_off(file.as_fd(), range, flags, app, &request)
    }

    fn ok() -> AppHead {
        AppHead {
            status: 200,
            ..AppHead::default()
        }
    }

    #[test]
    fn the_range_is_checked_against_the_file() {
        let f = file("range", b"0123456789");
        let whole = answer(&f, (0, WS_LENGTH_UNKNOWN), 0, &ok(), &[]).unwrap();
        assert_eq!((whole.status, whole.length), (200, 10));
        assert_eq!(whole.body.as_ref().map(|b| (b.1, b.2)), Some((0, 10)));
        let tail = answer(&f, (4, WS_LENGTH_UNKNOWN), 0, &ok(), &[]).unwrap();
        assert_eq!(tail.body.map(|b| (b.1, b.2)), Some((4, 10)));
        for bad in [(11, 0), (5, 6), (0, 11)] {
            assert!(matches!(
                answer(&f, bad, 0, &ok(), &[]),
                Err(Refused::OutOfRange { .. })
            ));
        }
        assert!(matches!(
            answer(&f, (0, 1), 0x100, &ok(), &[]),
            Err(Refused::Flags(0x100))
        ));
        let dir = File::open(std::env::temp_dir()).unwrap();
        assert!(matches!(
            answer(&dir, (0, 0), 0, &ok(), &[]),
            Err(Refused::NotRegular)
        ));
    }

    #[test]
    fn ranges_apply_to_the_apps_range_of_a_200_only() {
        let f = file("ranges", b"0123456789");
        let range: &[(&[u8], &[u8])] = &[(b"HTTP_RANGE", b"bytes=1-2")];
        let part = answer(&f, (2, 6), WS_FILE_RANGES, &ok(), range).unwrap();
        assert_eq!((part.status, part.length), (206, 2));
        assert_eq!(part.body.as_ref().map(|b| (b.1, b.2)), Some((3, 5)));
        assert!(part
            .headers
            .contains(&("Content-Range", "bytes 1-2/6".to_owned())));
        // Without the flag, or for a status the app chose, the range is not the server's.
        assert_eq!(answer(&f, (2, 6), 0, &ok(), range).unwrap().status, 200);
        let made = AppHead {
            status: 206,
            ..AppHead::default()
        };
        let sent = answer(&f, (2, 6), WS_FILE_RANGES, &made, range).unwrap();
        assert_eq!((sent.status, sent.length), (206, 6));
        let past: &[(&[u8], &[u8])] = &[(b"HTTP_RANGE", b"bytes=6-")];
        let refused = answer(&f, (2, 6), WS_FILE_RANGES, &ok(), past).unwrap();
        assert_eq!((refused.status, refused.length), (416, 0));
        assert!(refused.body.is_none());
        // HEAD: the head of the whole.
        let head: &[(&[u8], &[u8])] = &[(b"REQUEST_METHOD", b"HEAD"), range[0]];
        let head = answer(&f, (2, 6), WS_FILE_RANGES, &ok(), head).unwrap();
        assert_eq!((head.status, head.length), (200, 6));
        assert!(head.body.is_none());
    }

    #[test]
    fn validators_are_the_apps_or_with_the_flag_the_files() {
        let f = file("validators", b"0123456789");
        let app = AppHead {
            status: 200,
            etag: Some(b"W/\"v1\"".to_vec()),
            last_modified: None,
        };
        let inm: &[(&[u8], &[u8])] = &[(b"HTTP_IF_NONE_MATCH", b"\"v1\"")];
        assert_eq!(answer(&f, (0, 10), 0, &app, inm).unwrap().status, 304);
        // No validator: only `*` matches, and If-Modified-Since never does.
        assert_eq!(answer(&f, (0, 10), 0, &ok(), inm).unwrap().status, 200);
        let ims: &[(&[u8], &[u8])] =
            &[(b"HTTP_IF_MODIFIED_SINCE", b"Fri, 01 Jan 2100 00:00:00 GMT")];
        assert_eq!(answer(&f, (0, 10), 0, &ok(), ims).unwrap().status, 200);
        let own = answer(&f, (0, 10), WS_FILE_VALIDATORS, &ok(), ims).unwrap();
        assert_eq!(own.status, 304);
        let names: Vec<_> = own.headers.iter().map(|h| h.0).collect();
        assert_eq!(names, ["ETag", "Last-Modified"]);
        // If-Range with the app's weak tag: never a range.
        let weak: &[(&[u8], &[u8])] = &[
            (b"HTTP_RANGE", b"bytes=0-0"),
            (b"HTTP_IF_RANGE", b"W/\"v1\""),
        ];
        let whole = answer(&f, (0, 10), WS_FILE_RANGES, &app, weak).unwrap();
        assert_eq!(whole.status, 200);
    }
}
