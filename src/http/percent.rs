//! Percent-decoding of request paths (RFC 3986 §2.1), as needed for `PATH_INFO`.

use super::grammar::hex_val;

/// Appends `input` to `out` with every `%XX` (two hex digits, either case) decoded.
/// Invalid or truncated escapes are copied literally; `+` is left alone (it means space only
/// in `application/x-www-form-urlencoded` queries, not in paths). `out` is not cleared, so a
/// caller can decode into a reused buffer or arena.
pub(crate) fn percent_decode_into(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if b == b'%' {
            let hi = input.get(i + 1).copied().and_then(hex_val);
            let lo = input.get(i + 2).copied().and_then(hex_val);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
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
