//! Property tests (issue #4): random and mutated requests, split at random points across reads,
//! must never panic the parser or the body decoder and must be decided the same way however the
//! input is split (see `selfcheck.rs`, shared with the cargo-fuzz targets in `fuzz/`).

use proptest::prelude::*;

use super::fields::BodyFraming;
use super::scan::Limits;
use super::selfcheck::{check_all, check_body_splits, check_head_splits, SMALL_LIMITS};

/// Well-formed requests the mutations start from: every framing, pipelining, trailers.
const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\r\nGET /p?q=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\nHost: b\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: a:80\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
    b"PUT http://h/p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;e=\"v\"\r\nhello\r\n0\r\nT: v\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: [::1]\r\nX-A: 1\r\nx-a: 2\r\nConnection: close\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\nabc",
];

/// Bytes that matter to the grammar, so random input reaches deep states often.
const ALPHABET: &[u8] = b"\r\n\r\n :;,=\"\\/?#*.0123456789aAfFgGxX-+\t\x00\x01\x7f\x80\xffGETPOSTHTP/1Host:Content-LengthTransfer-Encodingchunked";

/// Random bytes drawn mostly from [`ALPHABET`].
fn grammar_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            8 => prop::sample::select(ALPHABET),
            1 => any::<u8>(),
        ],
        0..max,
    )
}

/// One edit of a seed request.
#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, u8),
    Delete(usize),
    Replace(usize, u8),
    /// Copy `len` bytes from `from` to `to` (duplicates fields, lines, chunks).
    Splice {
        from: usize,
        len: usize,
        to: usize,
    },
    /// Turn the CRLF at or after a position into a bare LF (or a bare CR).
    BreakCrlf(usize, bool),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![3 => prop::sample::select(ALPHABET), 1 => any::<u8>()];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(p, b)| Mutation::Insert(p, b)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), byte).prop_map(|(p, b)| Mutation::Replace(p, b)),
        (any::<usize>(), 1usize..40, any::<usize>()).prop_map(|(from, len, to)| Mutation::Splice {
            from,
            len,
            to
        }),
        (any::<usize>(), any::<bool>()).prop_map(|(p, cr)| Mutation::BreakCrlf(p, cr)),
    ]
}

fn apply(mut v: Vec<u8>, edits: &[Mutation]) -> Vec<u8> {
    for m in edits {
        let n = v.len();
        match *m {
            Mutation::Insert(p, b) => v.insert(p % (n + 1), b),
            Mutation::Delete(p) if n > 0 => {
                v.remove(p % n);
            }
            Mutation::Replace(p, b) if n > 0 => v[p % n] = b,
            Mutation::Splice { from, len, to } if n > 0 => {
                let from = from % n;
                let piece = v[from..(from + len).min(n)].to_vec();
                let to = to % (n + 1);
                v.splice(to..to, piece);
            }
            Mutation::BreakCrlf(p, keep_cr) if n > 1 => {
                if let Some(i) = (p % n..n - 1).find(|&i| v[i] == b'\r' && v[i + 1] == b'\n') {
                    v.remove(if keep_cr { i + 1 } else { i });
                }
            }
            _ => {}
        }
    }
    v
}

/// A seed request with 0–6 mutations.
fn mutated_request() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(SEEDS),
        prop::collection::vec(mutation(), 0..6),
    )
        .prop_map(|(seed, edits)| apply(seed.to_vec(), &edits))
}

fn any_request() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![3 => mutated_request(), 1 => grammar_bytes(200)]
}

/// A chunked body: well-formed chunks, then mutated.
fn chunked_body() -> impl Strategy<Value = Vec<u8>> {
    let chunk = (0usize..20, any::<bool>()).prop_map(|(len, ext)| {
        let mut c = format!("{len:x}").into_bytes();
        if ext {
            c.extend_from_slice(b";n=\"v\"");
        }
        c.extend_from_slice(b"\r\n");
        c.extend_from_slice(&vec![b'd'; len]);
        c.extend_from_slice(b"\r\n");
        c
    });
    (
        prop::collection::vec(chunk, 0..5),
        any::<bool>(),
        prop::collection::vec(mutation(), 0..4),
    )
        .prop_map(|(chunks, trailer, edits)| {
            let mut body = chunks.concat();
            body.extend_from_slice(if trailer {
                b"0\r\nX-T: v\r\n\r\nNEXT"
            } else {
                b"0\r\n\r\nNEXT"
            });
            apply(body, &edits)
        })
}

fn splits() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..400, 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn head_parser_agrees_with_itself(input in any_request(), cuts in splits()) {
        check_head_splits(&input, &cuts, &Limits::default());
        check_head_splits(&input, &cuts, &SMALL_LIMITS);
    }

    #[test]
    fn chunked_decoder_agrees_with_itself(
        body in prop_oneof![3 => chunked_body(), 1 => grammar_bytes(120)],
        cuts in splits(),
        out_cap in 1usize..17,
        max_body in prop_oneof![Just(16u64), Just(1u64 << 20)],
    ) {
        check_body_splits(BodyFraming::Chunked, max_body, &body, &cuts, out_cap);
    }

    #[test]
    fn length_decoder_agrees_with_itself(
        body in grammar_bytes(64),
        len in 0u64..80,
        cuts in splits(),
        out_cap in 1usize..9,
    ) {
        check_body_splits(BodyFraming::Length(len), 48, &body, &cuts, out_cap);
    }

    /// The fuzz targets' entry point: head, then the body it frames, never panics.
    #[test]
    fn whole_pipeline_never_panics(seed in any::<u64>(), input in any_request()) {
        let mut data = seed.to_le_bytes().to_vec();
        data.extend_from_slice(&input);
        check_all(&data);
    }
}
