//! Percent-decoding of request paths (RFC 3986 §2.1), as needed for `PATH_INFO`.

use super::grammar::hex_val;

/// Appends `input` to `out` with every `%XX` (two hex digits, either case) decoded.
/// Invalid or truncated escapes are copied literally; `+` is left alone (it means space only
/// in `application/x-www-form-urlencoded` queries, not in paths). `out` is not cleared, so a
/// caller can decode into a reused buffer or arena.
pub(crate) fn percent_decode_into(input: &[u8], out: &mut Vec<u8>) {
    // Most paths have no escape: one search (`contains` is a word-at-a-time memchr) and one
    // copy. Else a run at a time between escapes, not a push per byte.
    if !input.contains(&b'%') {
        out.extend_from_slice(input);
        return;
    }
    out.reserve(input.len());
    let mut rest = input;
    while let Some(at) = rest.iter().position(|&b| b == b'%') {
        out.extend_from_slice(&rest[..at]);
        let escaped = rest
            .get(at + 1..at + 3)
            .and_then(|hex| Some(hex_val(hex[0])? << 4 | hex_val(hex[1])?));
        match escaped {
            Some(byte) => {
                out.push(byte);
                rest = &rest[at + 3..];
            }
            None => {
                out.push(b'%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"/plain", b"/plain"),
            (b"/a%20b", b"/a b"),
            (b"%2F%2f", b"//"),
            (b"a+b", b"a+b"),
            (b"%", b"%"),
            (b"%4", b"%4"),
            (b"%zz%41", b"%zzA"),
            (b"%%41", b"%A"),
            (b"%C3%A9", "é".as_bytes()),
            (b"%00x", b"\0x"),
            (b"%ff", b"\xff"),
        ];
        for (input, want) in cases {
            let mut out = b"pre".to_vec();
            percent_decode_into(input, &mut out);
            assert_eq!(&out[3..], *want, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(&out[..3], b"pre");
        }
    }
}
