//! Request body decoding: Content-Length and chunked (RFC 9112 §6.3, §7.1) as an explicit
//! state machine that survives input split at any byte, with checked arithmetic throughout.
//!
//! Chunked choices (RFC 9112 §7.1, strict where the grammar allows a choice):
//! - chunk-size is 1–16 HEXDIG; signs, `0x`, leading whitespace are invalid.
//! - BWS is allowed only between the size and a `;` (the chunk-ext grammar); whitespace
//!   followed by CRLF is rejected.
//! - chunk extensions are syntax-checked (tokens, `=`, quoted strings) and ignored; at most
//!   [`MAX_EXTENSIONS`] bytes of them per body (§7.1.1 lets us limit them).
//! - every line must end with CRLF; a bare LF is rejected.
//! - the trailer section is syntax-checked (`token ":" value`, no obs-fold, no control byte but
//!   HTAB), limited to [`MAX_TRAILERS`] bytes, and kept for the app ([`BodyDecoder::trailers`],
//!   ABI 1.3 `request_trailers`) apart from the header fields (RFC 9110 §6.5.2).
//!
//! `--max-body` is checked here and only here ([`BodyLimit`]): a declared Content-Length when the
//! decoder is made, before any byte is read, and each chunk size as it is announced.

use std::fmt;

use super::fields::BodyFraming;
use super::grammar::{hex_val, is_ctl, is_tchar, push_digit};

/// Total chunk-extension bytes accepted per body.
pub(crate) const MAX_EXTENSIONS: usize = 4 * 1024;
/// Total trailer-section bytes accepted per body (CRLFs included).
pub(crate) const MAX_TRAILERS: usize = 8 * 1024;
/// Hex digits of one chunk size: 16 fill a `u64`.
const MAX_SIZE_DIGITS: u8 = 16;

/// A body framing error; "need more input" is not an error but `(0, 0)` from `decode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// chunk-size missing or not hex.
    InvalidChunkSize,
    /// more than 16 hex digits.
    ChunkSizeOverflow,
    /// bad byte in a chunk extension.
    InvalidChunkExtension,
    /// chunk extensions longer than [`MAX_EXTENSIONS`] in total.
    ChunkExtensionTooLong,
    /// CRLF expected (after the size line or chunk data), or a bare LF.
    MissingCrlf,
    /// a trailer field line that is not `token ":" value`.
    BadTrailer,
    /// trailer section longer than [`MAX_TRAILERS`].
    TrailerTooLarge,
    /// the body is larger than the configured maximum (413).
    TooLarge,
}

impl BodyError {
    /// The status code to answer with (if the response has not started yet).
    pub(crate) fn status(&self) -> u16 {
        match self {
            BodyError::TooLarge => 413,
            _ => 400,
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyError::InvalidChunkSize => "invalid chunk size",
            BodyError::ChunkSizeOverflow => "chunk size too large",
            BodyError::InvalidChunkExtension => "invalid chunk extension",
            BodyError::ChunkExtensionTooLong => "chunk extensions too long",
            BodyError::MissingCrlf => "missing CRLF in chunked body",
            BodyError::BadTrailer => "malformed trailer field",
            BodyError::TrailerTooLarge => "trailer section too large",
            BodyError::TooLarge => "request body too large",
        })
    }
}

impl std::error::Error for BodyError {}

/// Where the decoder is. Chunked states follow RFC 9112 §7.1's grammar left to right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Content-Length: this many bytes still to pass through.
    Length(u64),
    /// Reading chunk-size hex digits.
    Size { value: u64, digits: u8 },
    /// BWS after the size: only SP / HTAB / `;` may follow.
    SizeWs { value: u64 },
    /// Inside chunk extensions, until CR.
    Ext {
        value: u64,
        quoted: bool,
        escaped: bool,
    },
    /// CR of the size line seen, LF expected.
    SizeLf { value: u64 },
    /// Chunk data: bytes left in this chunk (> 0).
    Data(u64),
    /// CR expected after chunk data.
    DataCr,
    /// LF expected after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// In a trailer field name (at least one tchar read).
    TrailerName,
    /// In a trailer field value, until CR.
    TrailerValue,
    /// CR of a trailer line seen, LF expected; `last` if it was the empty line.
    TrailerLf { last: bool },
    /// Body complete: nothing more is consumed.
    Done,
    /// A previous call failed; the error is sticky.
    Failed(BodyError),
}

/// `--max-body` for one body: the one place a body's size is compared with the limit.
#[derive(Debug, Clone, Copy)]
struct BodyLimit {
    max: u64,
    /// Body bytes announced so far (a Content-Length, or the chunk sizes read so far).
    admitted: u64,
}

impl BodyLimit {
    /// Admits `n` more body bytes, before they are read; [`BodyError::TooLarge`] once the total
    /// would pass the limit.
    fn admit(&mut self, n: u64) -> Result<(), BodyError> {
        self.admitted = self
            .admitted
            .checked_add(n)
            .filter(|&total| total <= self.max)
            .ok_or(BodyError::TooLarge)?;
        Ok(())
    }
}

/// Decodes one request body. Never consumes bytes past the end of the body, so whatever
/// follows (a pipelined request) stays in the caller's buffer.
#[derive(Debug, Clone)]
pub(crate) struct BodyDecoder {
    state: State,
    limit: BodyLimit,
    ext_bytes: usize,
    trailer_bytes: usize,
    /// The trailer section's field lines as received, CRLFs included (at most
    /// [`MAX_TRAILERS`] bytes; empty, unallocated, for the usual body without trailers).
    trailer_section: Vec<u8>,
}

impl BodyDecoder {
    /// A decoder for `framing`, for a body of at most `max_body` bytes. A Content-Length over
    /// the limit fails here, so the caller can answer 413 before reading; a chunked body fails
    /// with [`BodyError::TooLarge`] at the first chunk size that takes it over.
    pub(crate) fn new(framing: &BodyFraming, max_body: u64) -> Result<Self, BodyError> {
        let mut limit = BodyLimit {
            max: max_body,
            admitted: 0,
        };
        let state = match *framing {
            BodyFraming::None => State::Done,
            BodyFraming::Length(n) => {
                limit.admit(n)?;
                if n == 0 {
                    State::Done
                } else {
                    State::Length(n)
                }
            }
            BodyFraming::Chunked => State::Size {
                value: 0,
                digits: 0,
            },
        };
        Ok(BodyDecoder {
            state,
            limit,
            ext_bytes: 0,
            trailer_bytes: 0,
            trailer_section: Vec::new(),
        })
    }

    /// True once the whole body (for chunked: through the trailer section) has been consumed.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The trailer fields, `(name, value)` with the value's surrounding whitespace trimmed, once
    /// the body is done (none before, and none for a body that was not chunked). The lines were
    /// checked as they arrived: a name is a token, a value holds no CR, LF or other control byte.
    pub(crate) fn trailers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let section = if self.is_done() {
            &self.trailer_section[..]
        } else {
            &[]
        };
        section
            .split(|&b| b == b'\n')
            .filter_map(|line| line.strip_suffix(b"\r"))
            .filter_map(|line| {
                let colon = line.iter().position(|&b| b == b':')?;
                let value = &line[colon + 1..];
                let start = value.iter().position(|&b| b != b' ' && b != b'\t');
                let end = value.iter().rposition(|&b| b != b' ' && b != b'\t');
                let value = match (start, end) {
                    (Some(start), Some(end)) => &value[start..=end],
                    _ => &[],
                };
                Some((&line[..colon], value))
            })
    }

    /// For Content-Length: bytes still expected; `Some(0)` when done; `None` for chunked.
    pub(crate) fn remaining_hint(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// Decodes from `input` into `out`, returning `(consumed, produced)`.
    ///
    /// Consumes framing bytes even when `out` is empty; stops at the end of the body, when
    /// `input` is exhausted, or when chunk data needs room in `out`. `(0, 0)` with
    /// `!is_done()` means: more input (or a non-empty `out`) is needed. Errors are sticky.
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<(usize, usize), BodyError> {
        let (mut consumed, mut produced) = (0usize, 0usize);
        loop {
            match self.state {
                State::Done => return Ok((consumed, produced)),
                State::Failed(e) => return Err(e),
                State::Length(left) | State::Data(left) => {
                    let src = input.get(consumed..).unwrap_or_default();
                    let dst = out.get_mut(produced..).unwrap_or_default();
                    let n = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(src.len())
                        .min(dst.len());
                    if n == 0 {
                        return Ok((consumed, produced));
                    }
                    if let (Some(d), Some(s)) = (dst.get_mut(..n), src.get(..n)) {
                        d.copy_from_slice(s);
                    }
                    consumed += n;
                    produced += n;
                    // n <= left, so the subtraction cannot underflow; usize → u64 never truncates.
                    let rest = left.saturating_sub(n as u64);
                    self.state = match (self.state, rest) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), r) => State::Length(r),
                        (_, 0) => State::DataCr,
                        (_, r) => State::Data(r),
                    };
                }
                _ => {
                    let Some(&b) = input.get(consumed) else {
                        return Ok((consumed, produced));
                    };
                    match self.step(b) {
                        Ok(()) => consumed += 1,
                        Err(e) => {
                            self.state = State::Failed(e);
                            return Err(e);
                        }
                    }
                }
            }
        }
    }

    /// Advances the chunked framing by one byte (every state except data and Done).
    fn step(&mut self, b: u8) -> Result<(), BodyError> {
        self.state = match self.state {
            State::Size { value, digits } => match (hex_val(b), b) {
                (Some(d), _) => {
                    if digits >= MAX_SIZE_DIGITS {
                        return Err(BodyError::ChunkSizeOverflow);
                    }
                    let value = push_digit(value, 16, d).ok_or(BodyError::ChunkSizeOverflow)?;
                    State::Size {
                        value,
                        digits: digits + 1,
                    }
                }
                _ if digits == 0 => return Err(BodyError::InvalidChunkSize),
                (None, b'\r') => State::SizeLf { value },
                (None, b';') => self.ext(value, false, false)?,
                (None, b' ' | b'\t') => State::SizeWs { value },
                (None, b'\n') => return Err(BodyError::MissingCrlf),
                (None, _) => return Err(BodyError::InvalidChunkSize),
            },
            State::SizeWs { value } => match b {
                b' ' | b'\t' => State::SizeWs { value },
                b';' => self.ext(value, false, false)?,
                _ => return Err(BodyError::InvalidChunkSize),
            },
            State::Ext {
                value,
                quoted: false,
                ..
            } => match b {
                b'\r' => State::SizeLf { value },
                b'\n' => return Err(BodyError::MissingCrlf),
                b'"' => self.ext(value, true, false)?,
                b';' | b'=' | b' ' | b'\t' => self.ext(value, false, false)?,
                _ if is_tchar(b) => self.ext(value, false, false)?,
                _ => return Err(BodyError::InvalidChunkExtension),
            },
            State::Ext {
                value,
                quoted: true,
                escaped,
            } => match b {
                // quoted-string (RFC 9110 §5.6.4): qdtext / quoted-pair, no CTL but HTAB.
                _ if is_ctl(b) => return Err(BodyError::InvalidChunkExtension),
                _ if escaped => self.ext(value, true, false)?,
                b'\\' => self.ext(value, true, true)?,
                b'"' => self.ext(value, false, false)?,
                _ => self.ext(value, true, false)?,
            },
            State::SizeLf { value } => match b {
                b'\n' if value == 0 => State::TrailerStart,
                b'\n' => {
                    // Before the data is read: an early 413.
                    self.limit.admit(value)?;
                    State::Data(value)
                }
                _ => return Err(BodyError::MissingCrlf),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(BodyError::MissingCrlf),
            },
            State::DataLf => match b {
                b'\n' => State::Size {
                    value: 0,
                    digits: 0,
                },
                _ => return Err(BodyError::MissingCrlf),
            },
            State::TrailerStart => {
                self.count_trailer(b)?;
                match b {
                    b'\r' => State::TrailerLf { last: true },
                    b'\n' => return Err(BodyError::MissingCrlf),
                    _ if is_tchar(b) => State::TrailerName,
                    _ => return Err(BodyError::BadTrailer),
                }
            }
            State::TrailerName => {
                self.count_trailer(b)?;
                match b {
                    b':' => State::TrailerValue,
                    _ if is_tchar(b) => State::TrailerName,
                    _ => return Err(BodyError::BadTrailer),
                }
            }
            State::TrailerValue => {
                self.count_trailer(b)?;
                match b {
                    b'\r' => State::TrailerLf { last: false },
                    b'\t' => State::TrailerValue,
                    _ if is_ctl(b) => return Err(BodyError::BadTrailer),
                    _ => State::TrailerValue,
                }
            }
            State::TrailerLf { last } => {
                self.count_trailer(b)?;
                match (b, last) {
                    (b'\n', true) => State::Done,
                    (b'\n', false) => State::TrailerStart,
                    _ => return Err(BodyError::MissingCrlf),
                }
            }
            State::Length(_) | State::Data(_) | State::Done | State::Failed(_) => self.state,
        };
        Ok(())
    }

    /// One more extension byte: counts it against [`MAX_EXTENSIONS`].
    fn ext(&mut self, value: u64, quoted: bool, escaped: bool) -> Result<State, BodyError> {
        self.ext_bytes = self.ext_bytes.saturating_add(1);
        if self.ext_bytes > MAX_EXTENSIONS {
            return Err(BodyError::ChunkExtensionTooLong);
        }
        Ok(State::Ext {
            value,
            quoted,
            escaped,
        })
    }

    /// One more trailer-section byte: counts it against [`MAX_TRAILERS`] and keeps it (a
    /// malformed byte is kept too, but a failed decoder hands out no trailers).
    fn count_trailer(&mut self, b: u8) -> Result<(), BodyError> {
        self.trailer_bytes = self.trailer_bytes.saturating_add(1);
        if self.trailer_bytes > MAX_TRAILERS {
            return Err(BodyError::TrailerTooLarge);
        }
        // The final empty line alone (the usual end of a chunked body) allocates nothing.
        if !(self.trailer_section.is_empty() && matches!(b, b'\r' | b'\n')) {
            self.trailer_section.push(b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces split at `split`, with an output buffer of `out_cap` bytes.
    /// `Err(None)` means the input ended before the body did.
    fn run(
        framing: BodyFraming,
        input: &[u8],
        split: usize,
        out_cap: usize,
    ) -> Result<(Vec<u8>, usize), Option<BodyError>> {
        let mut dec = BodyDecoder::new(&framing, 1 << 20).unwrap();
        let mut out = vec![0u8; out_cap];
        let mut body = Vec::new();
        let mut pos = 0;
        let mut avail = split.min(input.len());
        loop {
            let (c, p) = dec.decode(&input[pos..avail], &mut out).map_err(Some)?;
            body.extend_from_slice(&out[..p]);
            pos += c;
            if dec.is_done() {
                return Ok((body, pos));
            }
            if c == 0 && p == 0 {
                if avail == input.len() {
                    return Err(None);
                }
                avail = input.len();
            }
        }
    }

    const CHUNKED_OK: &[(&[u8], &[u8])] = &[
        (b"0\r\n\r\n", b""),
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
        (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (b"a\r\n0123456789\r\n000\r\n\r\n", b"0123456789"),
        (b"0000000000000003\r\nabc\r\n0\r\n\r\n", b"abc"),
        (b"3;ext\r\nabc\r\n0;a=b;c=\"x;\\\"y\"\r\n\r\n", b"abc"),
        (b"3 ;ext = v\r\nabc\r\n0\r\n\r\n", b"abc"),
        (b"3\r\nabc\r\n0\r\nX-T: v\r\nY:\r\n\r\n", b"abc"),
        (b"3\r\na\r\n\r\n0\r\n\r\n", b"a\r\n"),
    ];

    const CHUNKED_BAD: &[(&[u8], BodyError)] = &[
        (b"\r\n", BodyError::InvalidChunkSize),
        (b";x\r\n", BodyError::InvalidChunkSize),
        (b"-5\r\n", BodyError::InvalidChunkSize),
        (b"+5\r\n", BodyError::InvalidChunkSize),
        (b"0x5\r\n", BodyError::InvalidChunkSize),
        (b" 5\r\n", BodyError::InvalidChunkSize),
        (b"5 \r\nhello", BodyError::InvalidChunkSize),
        (b"g\r\n", BodyError::InvalidChunkSize),
        (b"5\nhello", BodyError::MissingCrlf),
        (b"5\rhello", BodyError::MissingCrlf),
        (b"5\r\nhelloX", BodyError::MissingCrlf),
        (b"5\r\nhello\n0\r\n\r\n", BodyError::MissingCrlf),
        (b"5\r\nhello\r\r\n", BodyError::MissingCrlf),
        (b"0\r\n\n", BodyError::MissingCrlf),
        (b"0\r\n\r\r", BodyError::MissingCrlf),
        (b"00000000000000001\r\n", BodyError::ChunkSizeOverflow),
        (b"FFFFFFFFFFFFFFFFF\r\n", BodyError::ChunkSizeOverflow),
        (b"FFFFFFFFFFFFFFFF\r\n", BodyError::TooLarge),
        (b"100001\r\n", BodyError::TooLarge),
        (b"1;a\x00\r\n", BodyError::InvalidChunkExtension),
        (b"1;a=\"\x01\"\r\n", BodyError::InvalidChunkExtension),
        (b"1;a=\"x\r\n", BodyError::InvalidChunkExtension),
        (b"1;a\nb\r\n", BodyError::MissingCrlf),
        (b"0\r\nX-T v\r\n\r\n", BodyError::BadTrailer),
        (b"0\r\n: v\r\n\r\n", BodyError::BadTrailer),
        (b"0\r\n x: v\r\n\r\n", BodyError::BadTrailer),
        (b"0\r\nX: a\x00\r\n\r\n", BodyError::BadTrailer),
        (b"0\r\nX: a\nb\r\n\r\n", BodyError::BadTrailer),
    ];

    #[test]
    fn chunked_ok_at_every_split_and_out_size() {
        for (input, want) in CHUNKED_OK {
            let mut with_next = input.to_vec();
            with_next.extend_from_slice(b"GET / HTTP/1.1\r\n");
            for split in 0..=with_next.len() {
                for out_cap in [1, 3, 64] {
                    let (body, used) = run(BodyFraming::Chunked, &with_next, split, out_cap)
                        .unwrap_or_else(|e| {
                            panic!("{:?} split {split}: {e:?}", String::from_utf8_lossy(input))
                        });
                    assert_eq!(body, *want);
                    assert_eq!(used, input.len(), "must not consume the next request");
                }
            }
        }
    }

    #[test]
    fn trailer_fields_are_kept_trimmed_and_only_once_the_body_is_done() {
        let input = b"3\r\nabc\r\n0\r\nGrpc-Status: 0 \r\nx-empty:\r\nX-Tab:\tv w\t\r\n\r\n";
        let mut dec = BodyDecoder::new(&BodyFraming::Chunked, 1 << 20).unwrap();
        let mut out = [0u8; 64];
        let (consumed, _) = dec.decode(&input[..input.len() - 1], &mut out).unwrap();
        assert!(!dec.is_done());
        assert_eq!(dec.trailers().count(), 0, "none before the body ends");
        dec.decode(&input[consumed..], &mut out).unwrap();
        assert!(dec.is_done());
        let got: Vec<_> = dec.trailers().collect();
        assert_eq!(
            got,
            [
                (&b"Grpc-Status"[..], &b"0"[..]),
                (b"x-empty", b""),
                (b"X-Tab", b"v w")
            ]
        );
        let mut plain = BodyDecoder::new(&BodyFraming::Chunked, 1 << 20).unwrap();
        plain.decode(b"0\r\n\r\n", &mut out).unwrap();
        assert!(plain.is_done());
        assert_eq!(plain.trailers().count(), 0);
        assert_eq!(
            plain.trailer_section.capacity(),
            0,
            "no trailers, no allocation"
        );
    }

    #[test]
    fn chunked_errors_at_every_split() {
        for (input, want) in CHUNKED_BAD {
            for split in 0..=input.len() {
                let got = run(BodyFraming::Chunked, input, split, 8);
                assert_eq!(
                    got.map(|_| ()),
                    Err(Some(*want)),
                    "{:?} split {split}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn incomplete_is_not_an_error() {
        let input = b"5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n";
        for cut in 0..input.len() {
            let mut dec = BodyDecoder::new(&BodyFraming::Chunked, 100).unwrap();
            let mut out = [0u8; 64];
            let (c, _) = dec.decode(&input[..cut], &mut out).unwrap();
            assert!(c <= cut && !dec.is_done(), "cut {cut}");
            let (c2, _) = dec.decode(&input[c..], &mut out).unwrap();
            assert_eq!(c + c2, input.len());
            assert!(dec.is_done());
        }
    }

    #[test]
    fn limits() {
        let mut dec = BodyDecoder::new(&BodyFraming::Chunked, 5).unwrap();
        let mut out = [0u8; 16];
        assert_eq!(
            dec.decode(b"3\r\nabc\r\n3\r\n", &mut out),
            Err(BodyError::TooLarge)
        );
        assert_eq!(
            dec.decode(b"", &mut out),
            Err(BodyError::TooLarge),
            "sticky"
        );
        assert_eq!(BodyError::TooLarge.status(), 413);

        let mut long_ext = b"1;".to_vec();
        long_ext.resize(MAX_EXTENSIONS + 10, b'a');
        let mut dec = BodyDecoder::new(&BodyFraming::Chunked, 5).unwrap();
        assert_eq!(
            dec.decode(&long_ext, &mut out),
            Err(BodyError::ChunkExtensionTooLong)
        );

        let mut long_trailer = b"0\r\nX: ".to_vec();
        long_trailer.resize(MAX_TRAILERS + 10, b'a');
        let mut dec = BodyDecoder::new(&BodyFraming::Chunked, 5).unwrap();
        assert_eq!(
            dec.decode(&long_trailer, &mut out),
            Err(BodyError::TrailerTooLarge)
        );
    }

    /// `--max-body` against a declared length (decided before reading) and chunk sizes.
    #[test]
    fn max_body_table() {
        let cases: &[(BodyFraming, u64, Result<(), BodyError>)] = &[
            (BodyFraming::None, 0, Ok(())),
            (BodyFraming::Length(0), 0, Ok(())),
            (BodyFraming::Length(5), 5, Ok(())),
            (BodyFraming::Length(6), 5, Err(BodyError::TooLarge)),
            (BodyFraming::Length(u64::MAX), u64::MAX, Ok(())),
            (
                BodyFraming::Length(u64::MAX),
                u64::MAX - 1,
                Err(BodyError::TooLarge),
            ),
            (BodyFraming::Chunked, 0, Ok(())),
        ];
        for (framing, max, want) in cases {
            let got = BodyDecoder::new(framing, *max).map(|_| ());
            assert_eq!(got, *want, "{framing:?} with max {max}");
        }
        // Chunk sizes add up against the same limit: 3 + 2 fits in 5, one more byte does not.
        for (body, want) in [
            (&b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"[..], Ok(true)),
            (b"3\r\nabc\r\n3\r\n", Err(BodyError::TooLarge)),
        ] {
            let mut dec = BodyDecoder::new(&BodyFraming::Chunked, 5).unwrap();
            let got = dec.decode(body, &mut [0u8; 16]).map(|_| dec.is_done());
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn length_and_none() {
        let input = b"hello worldNEXT";
        for split in 0..=input.len() {
            for cap in [1, 4, 64] {
                let (body, used) = run(BodyFraming::Length(11), input, split, cap).unwrap();
                assert_eq!((&body[..], used), (&b"hello world"[..], 11));
            }
        }
        let mut dec = BodyDecoder::new(&BodyFraming::Length(3), 10).unwrap();
        assert_eq!(dec.remaining_hint(), Some(3));
        assert_eq!(dec.decode(b"ab", &mut [0u8; 8]), Ok((2, 2)));
        assert_eq!(dec.remaining_hint(), Some(1));
        assert_eq!(dec.decode(b"c", &mut []), Ok((0, 0)));
        for f in [BodyFraming::None, BodyFraming::Length(0)] {
            let mut dec = BodyDecoder::new(&f, 0).unwrap();
            assert!(dec.is_done());
            assert_eq!(dec.decode(b"GET", &mut [0u8; 8]), Ok((0, 0)));
        }
        assert_eq!(
            BodyDecoder::new(&BodyFraming::Chunked, 1)
                .unwrap()
                .remaining_hint(),
            None
        );
    }

    #[test]
    fn no_panic_on_arbitrary_bytes() {
        let alphabet = b"0123456789aF;=\" \t\r\n:xX\\";
        let mut seed = 7u32;
        for _ in 0..20000 {
            let mut v = Vec::new();
            for _ in 0..(seed % 48) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                v.push(alphabet[(seed >> 16) as usize % alphabet.len()]);
            }
            let mut dec = BodyDecoder::new(&BodyFraming::Chunked, 64).unwrap();
            let mut out = [0u8; 7];
            let mut pos = 0;
            while let Ok((c, p)) = dec.decode(&v[pos..], &mut out) {
                pos += c;
                if dec.is_done() || (c == 0 && p == 0) {
                    break;
                }
            }
        }
    }
}
