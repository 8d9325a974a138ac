//! The one end-of-head rule: where a request head ends, and whether its line endings and sizes
//! are acceptable, decided byte by byte as the bytes arrive (RFC 9112 §2.2, §2.3, §3, §5.2).
//!
//! A head that arrives whole and clean (CRLFs, within the limits, valid syntax) is parsed in one
//! pass by `request::parse_whole` without this scanner: on such a head both decide the same, and
//! the tests and the fuzz self-checks compare them. Every other head is this scanner's: the
//! connection gives it the buffered bytes after every read and it resumes where it stopped, so a
//! client sending its head a byte at a time costs O(n) scanning, not O(n²). The parser
//! (`request.rs`) then runs once, on a head the scanner found complete, and `parse_head` uses
//! this same scanner, so the connection and the parser cannot disagree on where a head ends or
//! on a bare CR or LF.

use std::ops::Range;

use super::error::ParseError;

/// Size limits on the request head (RFC 9112 §2.3: a server must be able to answer 414 / 431).
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Longest request-line, CRLF excluded (RFC 9112 §3: "at least 8000 octets" recommended).
    pub max_request_line: usize,
    /// Most header fields; values above `request::MAX_HEADERS_CAP` are capped.
    pub max_headers: usize,
    /// Longest single field line, CRLF excluded.
    pub max_header_line: usize,
    /// Largest whole head, leading empty lines and the final CRLFCRLF included.
    pub max_head: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_headers: 100,
            max_header_line: 8 * 1024,
            max_head: 64 * 1024,
        }
    }
}

/// A complete head as the scanner found it, in offsets from the first byte scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeadEnd {
    /// Bytes of the head, leading empty lines and the final CRLFCRLF included.
    pub(crate) len: usize,
    /// The request-line, CRLF excluded.
    pub(crate) request_line: Range<usize>,
}

/// Where the scanner stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Skipping empty lines before the request-line (RFC 9112 §2.2).
    Leading,
    /// Inside the line that starts at this offset.
    Line(usize),
    /// Decided: later calls repeat the decision without looking at the input.
    Decided(Result<HeadEnd, ParseError>),
}

/// Finds the end of one request head in input that grows between calls.
///
/// Every call must pass the same bytes as the call before, possibly with more after them (the
/// connection's unconsumed input); a new head needs a new scanner ([`HeadScanner::reset`]).
/// RFC 9112 §2.2: leading empty lines are skipped and a bare CR is rejected; a bare LF (which a
/// server MAY accept) is rejected too, to keep framing unambiguous. A line starting with
/// whitespace is obs-fold (§5.2) or whitespace after the request-line (§2.2): both rejected.
/// Limits are decided by byte position, so the answer never depends on how reads split the input.
#[derive(Debug, Clone)]
pub(crate) struct HeadScanner {
    phase: Phase,
    /// The next byte to look at. Bytes of the current line before it hold no CR or LF.
    pos: usize,
    request_line: Option<Range<usize>>,
    /// Bytes looked at so far, counting a byte looked at twice twice (proves the O(n) claim).
    #[cfg(test)]
    examined: usize,
}

impl Default for HeadScanner {
    fn default() -> Self {
        HeadScanner {
            phase: Phase::Leading,
            pos: 0,
            request_line: None,
            #[cfg(test)]
            examined: 0,
        }
    }
}

impl HeadScanner {
    /// Forget the head scanned so far: the next call starts a new head at its input's first byte.
    pub(crate) fn reset(&mut self) {
        *self = HeadScanner::default();
    }

    /// Nothing of this head looked at yet (or a lone CR, looked at again next time): the caller
    /// may still try the one-pass parse (`request::find_head`) before scanning.
    pub(crate) fn is_fresh(&self) -> bool {
        self.phase == Phase::Leading && self.pos == 0
    }

    /// `Ok(None)`: no end yet and no limit broken (read more). `Ok(Some(end))`: the head is
    /// `input[..end.len]`. `Err`: the head is invalid whatever follows. A decision is final.
    pub(crate) fn scan(
        &mut self,
        input: &[u8],
        limits: &Limits,
    ) -> Result<Option<HeadEnd>, ParseError> {
        if let Phase::Decided(decision) = &self.phase {
            return decision.clone().map(Some);
        }
        let result = self.resume(input, limits);
        match &result {
            Ok(None) => {}
            Ok(Some(end)) => self.phase = Phase::Decided(Ok(end.clone())),
            Err(e) => self.phase = Phase::Decided(Err(*e)),
        }
        result
    }

    fn resume(&mut self, input: &[u8], limits: &Limits) -> Result<Option<HeadEnd>, ParseError> {
        if self.phase == Phase::Leading {
            match self.skip_empty_lines(input, limits)? {
                Some(line_start) => self.phase = Phase::Line(line_start),
                None => return Ok(None),
            }
        }
        let Phase::Line(mut line_start) = self.phase else {
            return Ok(None);
        };
        loop {
            let first = self.request_line.is_none();
            let (line_limit, line_error) = if first {
                (limits.max_request_line, ParseError::UriTooLong)
            } else {
                (limits.max_header_line, ParseError::HeadTooLarge)
            };
            // Resume after the bytes of this line already known to hold no CR or LF.
            let from = self.pos.max(line_start);
            let rest = input.get(from..).unwrap_or_default();
            let Some(i) = memchr::memchr2(b'\r', b'\n', rest) else {
                self.count(rest.len());
                self.pos = input.len();
                return match first_limit_error(
                    line_start,
                    input.len(),
                    line_limit,
                    line_error,
                    limits.max_head,
                ) {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            };
            self.count(i + 1);
            // A CR waiting for its LF is looked at again by the next call.
            let eol = from + i;
            self.pos = eol;
            // Limits first, decided as for the prefix `input[..eol]` whatever follows the line.
            if let Some(e) =
                first_limit_error(line_start, eol, line_limit, line_error, limits.max_head)
            {
                return Err(e);
            }
            if input.get(eol) == Some(&b'\n') {
                return Err(ParseError::Malformed("bare LF"));
            }
            // The CR alone already makes the head too large: decided before the byte after it.
            if eol + 1 > limits.max_head {
                return Err(ParseError::HeadTooLarge);
            }
            match input.get(eol + 1) {
                Some(b'\n') => self.count(1),
                Some(_) => {
                    self.count(1);
                    return Err(ParseError::Malformed("bare CR"));
                }
                None => return Ok(None),
            }
            let next = eol + 2;
            if next > limits.max_head {
                return Err(ParseError::HeadTooLarge);
            }
            if first {
                self.request_line = Some(line_start..eol);
            } else if eol == line_start {
                return Ok(Some(HeadEnd {
                    len: next,
                    request_line: self.request_line.clone().unwrap_or(0..0),
                }));
            } else if matches!(input.get(line_start), Some(b' ' | b'\t')) {
                return Err(ParseError::Malformed(
                    "obs-fold or whitespace before field line",
                ));
            }
            line_start = next;
            self.phase = Phase::Line(next);
            self.pos = next;
        }
    }

    /// Skips CRLFs before the request-line; `Some(offset)` of its first byte once one is seen.
    fn skip_empty_lines(
        &mut self,
        input: &[u8],
        limits: &Limits,
    ) -> Result<Option<usize>, ParseError> {
        loop {
            let pos = self.pos;
            let (byte, after) = (input.get(pos), input.get(pos.saturating_add(1)));
            self.count(usize::from(byte.is_some()) + usize::from(after.is_some()));
            match (byte, after) {
                (Some(b'\r'), Some(b'\n')) => self.pos += 2,
                (Some(b'\r'), Some(_)) => return Err(ParseError::Malformed("bare CR")),
                (Some(b'\n'), _) => return Err(ParseError::Malformed("bare LF")),
                // A CR waiting for its LF is looked at again by the next call.
                (Some(b'\r'), None) | (None, _) => {
                    return if pos > limits.max_head {
                        Err(ParseError::HeadTooLarge)
                    } else {
                        Ok(None)
                    };
                }
                (Some(_), _) => return Ok(Some(pos)),
            }
            if self.pos > limits.max_head {
                return Err(ParseError::HeadTooLarge);
            }
        }
    }

    #[cfg(test)]
    fn count(&mut self, bytes: usize) {
        self.examined += bytes;
    }

    #[cfg(not(test))]
    fn count(&mut self, _bytes: usize) {}
}

/// The limit a line's content breaks, for input ending at `end` inside the line that starts at
/// `line_start`: the line limit (`err`) or `max_head`, whichever the bytes broke first (the line
/// limit on a tie). Deciding by byte position keeps the answer independent of how the input was
/// split across reads (issue #4: found by the `request_head` fuzz target, where a long line
/// crossing `max_head` was 431 when cut early but 400 "bare LF" when read whole).
fn first_limit_error(
    line_start: usize,
    end: usize,
    limit: usize,
    err: ParseError,
    max_head: usize,
) -> Option<ParseError> {
    // Bytes needed before each limit is known to be broken.
    let line_broken_at = line_start.saturating_add(limit).saturating_add(1);
    let head_broken_at = max_head.saturating_add(1);
    match (end >= line_broken_at, end >= head_broken_at) {
        (true, true) if line_broken_at <= head_broken_at => Some(err),
        (true, false) => Some(err),
        (_, true) => Some(ParseError::HeadTooLarge),
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(input: &[u8], limits: &Limits) -> Result<Option<HeadEnd>, ParseError> {
        HeadScanner::default().scan(input, limits)
    }

    /// The decision for every input, and the head length when complete.
    #[test]
    fn end_of_head_table() {
        type Want = Result<Option<usize>, &'static str>;
        let cases: &[(&[u8], Want)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(Some(27))),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY", Ok(Some(27))),
            (b"GET / HTTP/1.0\r\n\r\n", Ok(Some(18))),
            (b"\r\n\r\nGET / HTTP/1.0\r\n\r\n", Ok(Some(22))),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", Ok(None)),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r", Ok(None)),
            (b"GET / HTTP/1.1\r", Ok(None)),
            (b"\r\n\r", Ok(None)),
            (b"", Ok(None)),
            // bare LF anywhere: at once, without waiting for the end of the head
            (b"GET / HTTP/1.1\nHost: a\n\n", Err("bare LF")),
            (b"GET / HTTP/1.1\n", Err("bare LF")),
            (b"GET / HTTP/1.1\r\nHost: a\n", Err("bare LF")),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\n", Err("bare LF")),
            (b"\n", Err("bare LF")),
            (b"\r\n\nGET / HTTP/1.1\r\n\r\n", Err("bare LF")),
            // bare CR
            (b"GET / HTTP/1.1\r\nHost: a\rb", Err("bare CR")),
            (b"\rGET", Err("bare CR")),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\rX", Err("bare CR")),
            // whitespace starting a field line
            (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", Err("obs-fold")),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\tb\r\n\r\n", Err("obs-fold")),
        ];
        for (input, want) in cases {
            let name = String::from_utf8_lossy(input);
            let got = whole(input, &Limits::default());
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got.map(|e| e.len), *want, "{name:?}"),
                (Err(ParseError::Malformed(m)), Err(w)) => {
                    assert!(m.contains(w), "{name:?}: {m}")
                }
                (got, want) => panic!("{name:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn request_line_range() {
        let input = b"\r\nPOST /x HTTP/1.1\r\nHost: a\r\n\r\n";
        let end = whole(input, &Limits::default()).unwrap().unwrap();
        assert_eq!(&input[end.request_line], b"POST /x HTTP/1.1");
        assert_eq!(end.len, input.len());
    }

    /// Fed one byte at a time, as a dribbling client sends, the scanner decides exactly as on
    /// the whole input, and looks at each byte at most twice (a CR waiting for its LF is looked
    /// at again): O(n) for the whole head, where re-parsing from byte 0 after every read would be
    /// O(n²).
    #[test]
    fn byte_at_a_time_costs_linear_scanning() {
        let mut head = b"GET /".to_vec();
        head.extend_from_slice(&[b'a'; 4000]);
        head.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n");
        while head.len() < 60 * 1024 {
            head.extend_from_slice(b"X-Filler: 0123456789abcdef0123456789abcdef\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let limits = Limits::default();
        let mut scanner = HeadScanner::default();
        for end in 0..head.len() {
            assert_eq!(scanner.scan(&head[..end], &limits), Ok(None), "at {end}");
        }
        let found = scanner.scan(&head, &limits).unwrap().unwrap();
        assert_eq!(found.len, head.len());
        assert_eq!(Ok(Some(found)), whole(&head, &limits));
        assert!(
            scanner.examined <= 2 * head.len(),
            "{} bytes examined for a {}-byte head",
            scanner.examined,
            head.len()
        );
    }

    /// Resuming gives the same answer as scanning the whole prefix, at every split.
    #[test]
    fn resumed_scan_agrees_with_whole_scan_at_every_split() {
        let small = Limits {
            max_request_line: 20,
            max_headers: 10,
            max_header_line: 10,
            max_head: 40,
        };
        let inputs: &[&[u8]] = &[
            b"\r\nGET /x HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\nNEXT",
            b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n",
            b"GET /aaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaa\r\n\r\n",
            b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n",
        ];
        for input in inputs {
            for limits in [&Limits::default(), &small] {
                let want = whole(input, limits);
                for first in 0..=input.len() {
                    let mut scanner = HeadScanner::default();
                    let early = scanner.scan(&input[..first], limits);
                    assert!(
                        early == Ok(None) || early == want,
                        "{:?} cut {first}: {early:?}",
                        String::from_utf8_lossy(input)
                    );
                    assert_eq!(
                        scanner.scan(input, limits),
                        want,
                        "{:?} resumed at {first}",
                        String::from_utf8_lossy(input)
                    );
                }
            }
        }
    }

    #[test]
    fn decision_is_final_and_reset_starts_over() {
        let limits = Limits::default();
        let mut scanner = HeadScanner::default();
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let end = scanner.scan(head, &limits).unwrap().unwrap();
        let mut more = head.to_vec();
        more.extend_from_slice(b"\n\n\n");
        assert_eq!(scanner.scan(&more, &limits), Ok(Some(end)));
        scanner.reset();
        assert_eq!(
            scanner.scan(&more[head.len()..], &limits),
            Err(ParseError::Malformed("bare LF"))
        );
    }
}
