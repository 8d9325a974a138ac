//! Self-consistency checks for the request-head parser and the body decoder, shared by the
//! property tests (`proptests.rs`) and the cargo-fuzz targets (`fuzz/`, built with
//! `cfg(fuzzing)`), issue #4.
//!
//! A connection feeds [`find_head`] a growing prefix of what the client sent (a head that came
//! whole is parsed in one pass, any other is scanned as it grows and [`parse_scanned`] runs on
//! the head the scanner finds), and feeds [`BodyDecoder::decode`] whatever arrived,
//! so the answer must not depend on where the reads happened to split the input, and must be
//! the answer [`parse_head`] gives for the whole input: every check panics if it does not.

use super::body::{BodyDecoder, BodyError};
use super::error::ParseError;
use super::fields::BodyFraming;
use super::request::{find_head, parse_head, parse_scanned, parse_whole, Found, RequestHead};
use super::scan::{HeadScanner, Limits};

/// Small limits, so short random inputs reach the 414 / 431 paths too.
pub(crate) const SMALL_LIMITS: Limits = Limits {
    max_request_line: 64,
    max_headers: 4,
    max_header_line: 48,
    max_head: 100,
};

/// What `parse_head` decided, with the parsed head as owned bytes (comparable across buffers).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeadOutcome {
    Incomplete,
    Invalid(ParseError),
    Complete {
        head_len: usize,
        method: Vec<u8>,
        target: Vec<u8>,
        version_minor: u8,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        framing: BodyFraming,
        keep_alive: bool,
        expect_continue: bool,
    },
}

/// Parses `buf` with `limits`, reusing `head`.
pub(crate) fn head_outcome(buf: &[u8], limits: &Limits, head: &mut RequestHead) -> HeadOutcome {
    outcome_of(parse_head(buf, limits, head), buf, limits, head)
}

/// What the connection decides for `buf` with `scanner`, which has seen a prefix of `buf`: the
/// one-pass parse while the scanner has seen nothing, else the scanner resumes, and the parser
/// runs only on the complete head it finds.
fn resumed_outcome(
    scanner: &mut HeadScanner,
    buf: &[u8],
    limits: &Limits,
    head: &mut RequestHead,
) -> HeadOutcome {
    let parsed = match find_head(scanner, buf, limits, head) {
        Ok(Some(Found::Parsed(len))) => Ok(Some(len)),
        Ok(Some(Found::Scanned(end))) => parse_scanned(buf, &end, limits, head).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    outcome_of(parsed, buf, limits, head)
}

fn outcome_of(
    parsed: Result<Option<usize>, ParseError>,
    buf: &[u8],
    limits: &Limits,
    head: &RequestHead,
) -> HeadOutcome {
    match parsed {
        Ok(None) => HeadOutcome::Incomplete,
        Err(e) => HeadOutcome::Invalid(e),
        Ok(Some(head_len)) => {
            assert_eq!(
                head_len, head.head_len,
                "returned and stored lengths differ"
            );
            assert!(head_len <= buf.len(), "head longer than the input");
            assert!(head_len <= limits.max_head, "head over max_head accepted");
            HeadOutcome::Complete {
                head_len,
                method: head.method(buf).to_vec(),
                target: head.target(buf).to_vec(),
                version_minor: head.version_minor,
                headers: head
                    .header_iter(buf)
                    .map(|(n, v)| (n.to_vec(), v.to_vec()))
                    .collect(),
                framing: head.framing,
                keep_alive: head.keep_alive,
                expect_continue: head.expect_continue,
            }
        }
    }
}

/// Feeds `input` to the parser as a connection would, one prefix per read ending at each of
/// `splits` (sorted, deduplicated, clamped), and checks that every prefix is either still
/// incomplete or decided exactly as the whole input is, and that once decided it stays decided:
/// both for [`parse_head`] on each prefix and for one [`HeadScanner`] resumed across the
/// prefixes, as the connection does. Also checks that the parsed head re-parses identically on
/// its own.
pub(crate) fn check_head_splits(input: &[u8], splits: &[usize], limits: &Limits) {
    let mut head = RequestHead::default();
    let whole = head_outcome(input, limits, &mut head);
    let mut ends: Vec<usize> = splits.iter().map(|&s| s.min(input.len())).collect();
    ends.push(input.len());
    ends.sort_unstable();
    ends.dedup();
    let mut decided = false;
    let mut scanner = HeadScanner::default();
    for end in ends {
        let got = head_outcome(&input[..end], limits, &mut head);
        let resumed = resumed_outcome(&mut scanner, &input[..end], limits, &mut head);
        assert_eq!(
            resumed,
            got,
            "the resumed scanner decided a prefix of {end} bytes differently from parse_head: {:?}",
            String::from_utf8_lossy(input)
        );
        if got == HeadOutcome::Incomplete && !decided {
            continue;
        }
        assert_eq!(
            got,
            whole,
            "prefix of {end} bytes decided differently from the whole {} bytes: {:?}",
            input.len(),
            String::from_utf8_lossy(input)
        );
        decided = true;
    }
    // The one-pass parse, where it decides, decides as the scanner and parser do.
    if let Some(parsed) = parse_whole(input, limits, &mut head) {
        let one_pass = outcome_of(parsed.map(Some), input, limits, &head);
        assert_eq!(
            one_pass,
            whole,
            "the one-pass parse decided differently: {:?}",
            String::from_utf8_lossy(input)
        );
    }
    if let HeadOutcome::Complete { head_len, .. } = whole {
        // The head alone (no body or next request after it) parses the same.
        let alone = head_outcome(&input[..head_len], limits, &mut head);
        assert_eq!(alone, whole, "head alone parses differently");
    }
}

/// The decoded body and the bytes consumed, or the error; `Ok(None)` if the input ran out first.
pub(crate) type BodyOutcome = Result<Option<(Vec<u8>, usize)>, BodyError>;

/// Decodes `input` with `framing`, giving the decoder the input in pieces ending at `splits`
/// and an output buffer of `out_cap` bytes (at least 1).
pub(crate) fn decode_in_pieces(
    framing: BodyFraming,
    max_body: u64,
    input: &[u8],
    splits: &[usize],
    out_cap: usize,
) -> BodyOutcome {
    let mut dec = BodyDecoder::new(&framing, max_body)?;
    let mut out = vec![0u8; out_cap.max(1)];
    let mut body = Vec::new();
    let mut pos = 0usize;
    let mut ends: Vec<usize> = splits.iter().map(|&s| s.min(input.len())).collect();
    ends.push(input.len());
    ends.sort_unstable();
    ends.dedup();
    for end in ends {
        loop {
            if dec.is_done() {
                return Ok(Some((body, pos)));
            }
            let (consumed, produced) = dec.decode(&input[pos..end], &mut out)?;
            assert!(consumed <= end - pos, "consumed more than it was given");
            assert!(produced <= out.len(), "produced more than the buffer holds");
            body.extend_from_slice(&out[..produced]);
            pos += consumed;
            if consumed == 0 && produced == 0 && !dec.is_done() {
                break; // needs more input
            }
        }
    }
    if dec.is_done() {
        Ok(Some((body, pos)))
    } else {
        Ok(None)
    }
}

/// Checks that decoding `input` in pieces ending at `splits`, with an `out_cap`-byte buffer,
/// gives the same body, consumed length or error as decoding it in one piece with a large buffer,
/// and that a finished body never exceeds `max_body` or the input.
pub(crate) fn check_body_splits(
    framing: BodyFraming,
    max_body: u64,
    input: &[u8],
    splits: &[usize],
    out_cap: usize,
) {
    let whole = decode_in_pieces(framing, max_body, input, &[], input.len().max(1));
    let split = decode_in_pieces(framing, max_body, input, splits, out_cap);
    assert_eq!(
        split,
        whole,
        "{framing:?} decoded differently in pieces {splits:?} (out {out_cap}): {:?}",
        String::from_utf8_lossy(input)
    );
    if let Ok(Some((body, consumed))) = &whole {
        assert!(body.len() as u64 <= max_body, "body over max_body accepted");
        assert!(*consumed <= input.len());
        if let BodyFraming::Length(n) = framing {
            assert_eq!(body.len() as u64, n);
            assert_eq!(*consumed as u64, n);
        }
        // Decoding just the consumed bytes gives the same body: nothing after it was needed.
        let exact = decode_in_pieces(framing, max_body, &input[..*consumed], &[], 64);
        assert_eq!(exact, whole, "the body needed bytes past its end");
    }
}

/// Derives split points from `seed` (xorshift), `count` of them within `len`.
pub(crate) fn splits_from_seed(seed: u64, len: usize, count: usize) -> Vec<usize> {
    let mut x = seed | 1;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % (len as u64 + 1)) as usize
        })
        .collect()
}

/// Every check on one fuzz input: the head parser with default and small limits, then (if the
/// head is complete and has a body) the body decoder on the rest, plus the chunked decoder on
/// the raw input. The first 8 bytes seed the split points.
pub(crate) fn check_all(data: &[u8]) {
    let (seed, input) = split_seed(data);
    let splits = if input.len() <= 128 {
        (0..=input.len()).collect()
    } else {
        splits_from_seed(seed, input.len(), 24)
    };
    for limits in [Limits::default(), SMALL_LIMITS] {
        check_head_splits(input, &splits, &limits);
        let mut head = RequestHead::default();
        if let Ok(Some(n)) = parse_head(input, &limits, &mut head) {
            let rest = &input[n..];
            let rest_splits = splits_from_seed(seed ^ 0x5eed, rest.len(), 8);
            check_body_splits(
                head.framing,
                1 << 16,
                rest,
                &rest_splits,
                1 + (seed % 7) as usize,
            );
        }
    }
    check_chunked(data);
}

/// The chunked decoder alone on `data` (first 8 bytes: seed), with two `max_body` values.
pub(crate) fn check_chunked(data: &[u8]) {
    let (seed, input) = split_seed(data);
    let splits = splits_from_seed(seed, input.len(), 16);
    let out_cap = 1 + (seed >> 32) as usize % 13;
    for max_body in [64, 1 << 20] {
        check_body_splits(BodyFraming::Chunked, max_body, input, &splits, out_cap);
    }
}

fn split_seed(data: &[u8]) -> (u64, &[u8]) {
    match data.split_first_chunk::<8>() {
        Some((seed, rest)) => (u64::from_le_bytes(*seed), rest),
        None => (0, data),
    }
}
