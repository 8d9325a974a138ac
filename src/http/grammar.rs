//! The byte-level grammar every HTTP/1.1 file shares (RFC 9110 §5.6, RFC 5234 B.1): tokens,
//! control bytes, optional whitespace, hex and decimal digits. It depends on nothing else in
//! `http/`, so the request, field, target, body and response files all build on it without
//! depending on each other.

/// `tchar` (RFC 9110 §5.6.2): the bytes of a token (method, field name, coding name).
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// [`is_tchar`] as a table: one load per byte instead of a range test and a match (every
/// response field name an app sets is checked byte by byte).
static TCHAR: [bool; 256] = alphanumeric_and(b"!#$%&'*+-.^_`|~");

/// `reg-name` bytes (RFC 3986 §3.2.2: unreserved / sub-delims, and `%` let through for
/// pct-encoded): every request's Host value is checked byte by byte.
pub(crate) fn is_reg_name_byte(b: u8) -> bool {
    REG_NAME[usize::from(b)]
}

static REG_NAME: [bool; 256] = alphanumeric_and(b"-._~%!$&'()*+,;=");

/// A byte-set table: ASCII letters and digits, and `extra`.
const fn alphanumeric_and(extra: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
}

/// Whether field name `name` is `lower` (spelled with lower-case letters, digits and `-`) in any
/// case. Each byte of `name` gets bit 0x20 set where `lower` has a letter (which lower-cases an
/// upper-case letter and makes no other byte a letter) and must then equal `lower`'s: the masks
/// of a constant name are constants, and the fold has no early exit, where
/// `eq_ignore_ascii_case` converts both sides byte by byte (about seven instructions a byte).
#[inline]
pub(crate) fn is_field_name(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len()
        && name.iter().zip(lower).fold(true, |same, (&n, &l)| {
            let fold = u8::from(l.is_ascii_lowercase()) << 5;
            same & ((n | fold) == l)
        })
}

/// `token = 1*tchar` (RFC 9110 §5.6.2).
pub(crate) fn is_token(bytes: &[u8]) -> bool {
    // A fold, not an early exit: names are short and valid, and a table load per byte with no
    // branch is the cheapest walk (every response field name is checked).
    bytes
        .iter()
        .fold(!bytes.is_empty(), |ok, &b| ok & is_tchar(b))
}

/// A control byte other than HTAB (RFC 5234 B.1 `CTL`): never allowed in a field value, a
/// quoted string or a reason phrase.
pub(crate) fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// Strips optional whitespace (`OWS`: SP / HTAB, RFC 9110 §5.6.3) from both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The value of one `HEXDIG` (RFC 5234 B.1; either case, as RFC 3986 §2.1 and RFC 9112 §7.1
/// chunk sizes accept).
pub(crate) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `value * radix + digit`, or `None` on overflow: the one accumulator for every number read
/// digit by digit (decimal lengths here, hex chunk sizes in `body.rs`).
pub(crate) fn push_digit(value: u64, radix: u64, digit: u8) -> Option<u64> {
    value.checked_mul(radix)?.checked_add(u64::from(digit))
}

/// Why [`parse_decimal`] refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecimalError {
    /// Empty, or a byte other than `0`–`9` (signs, spaces, `0x`, list commas).
    NotDigits,
    /// More than `u64::MAX`.
    Overflow,
}

/// `1*DIGIT` as a `u64` (RFC 9110 §8.6 `Content-Length`): no sign, no whitespace, no list.
/// Leading zeros are allowed, as the grammar allows them.
pub(crate) fn parse_decimal(value: &[u8]) -> Result<u64, DecimalError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(DecimalError::NotDigits);
    }
    value.iter().try_fold(0u64, |n, &d| {
        push_digit(n, 10, d - b'0').ok_or(DecimalError::Overflow)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table holds exactly RFC 9110's tchar: ALPHA, DIGIT and fifteen symbols.
    #[test]
    fn tchar_table_is_the_rfc_set() {
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), want, "byte {b:#04x}");
        }
    }

    /// Any spelling of the name matches, and nothing else (a byte that becomes `-` with bit 0x20
    /// set, CR, does not).
    #[test]
    fn a_field_name_matches_in_any_case_and_only_itself() {
        for name in [
            "content-length",
            "Content-Length",
            "CONTENT-LENGTH",
            "cOnTeNt-LeNgTh",
        ] {
            assert!(is_field_name(name.as_bytes(), b"content-length"), "{name}");
        }
        for name in [
            "content-lengt",
            "content-lengths",
            "content_length",
            "content-lengtx",
            "content\rlength",
            "CONTENT-LENGTH ",
        ] {
            assert!(!is_field_name(name.as_bytes(), b"content-length"), "{name}");
        }
    }

    /// Exactly `eq_ignore_ascii_case` for every name the server compares with: each byte of
    /// each constant replaced by each of the 256 bytes (the fold judges a byte by itself, so
    /// this covers every name of the constant's length), and the constant in any case.
    #[test]
    fn a_field_name_is_compared_as_eq_ignore_ascii_case_does_for_every_byte() {
        for lower in [
            &b"host"[..],
            b"content-type",
            b"content-length",
            b"transfer-encoding",
            b"connection",
            b"upgrade",
            b"expect",
        ] {
            let upper = lower.to_ascii_uppercase();
            assert!(is_field_name(lower, lower) && is_field_name(&upper, lower));
            for at in 0..lower.len() {
                for byte in 0..=255u8 {
                    let mut name = lower.to_vec();
                    name[at] = byte;
                    assert_eq!(
                        is_field_name(&name, lower),
                        name.eq_ignore_ascii_case(lower),
                        "{} against {}",
                        name.escape_ascii(),
                        lower.escape_ascii()
                    );
                }
            }
        }
    }

    #[test]
    fn reg_name_table_is_the_rfc_set() {
        // RFC 3986: unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"; sub-delims = "!" / "$" /
        // "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="; and "%" of pct-encoded.
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b);
            assert_eq!(is_reg_name_byte(b), want, "byte {b:#04x}");
        }
    }

    #[test]
    fn decimal_table() {
        use DecimalError::*;
        let cases: &[(&[u8], Result<u64, DecimalError>)] = &[
            (b"0", Ok(0)),
            (b"7", Ok(7)),
            (b"0007", Ok(7)),
            (b"1234567890", Ok(1_234_567_890)),
            (b"18446744073709551615", Ok(u64::MAX)),
            (b"18446744073709551616", Err(Overflow)),
            (b"99999999999999999999999", Err(Overflow)),
            (b"", Err(NotDigits)),
            (b"-1", Err(NotDigits)),
            (b"+1", Err(NotDigits)),
            (b" 1", Err(NotDigits)),
            (b"1 ", Err(NotDigits)),
            (b"1,1", Err(NotDigits)),
            (b"0x10", Err(NotDigits)),
            (b"1e3", Err(NotDigits)),
            (b"\xd9\xa1", Err(NotDigits)), // ARABIC-INDIC DIGIT ONE is not DIGIT
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_decimal(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn digits_and_overflow() {
        assert_eq!(push_digit(0, 16, 0xf), Some(15));
        assert_eq!(push_digit(u64::MAX / 16, 16, 0xf), Some(u64::MAX));
        assert_eq!(push_digit(u64::MAX / 16 + 1, 16, 0), None);
        assert_eq!(push_digit(u64::MAX / 10, 10, 6), None);
        let hex: Vec<Option<u8>> = b"09afAFgG/:@`".iter().map(|&b| hex_val(b)).collect();
        assert_eq!(
            hex,
            [
                Some(0),
                Some(9),
                Some(10),
                Some(15),
                Some(10),
                Some(15),
                None,
                None,
                None,
                None,
                None,
                None
            ]
        );
    }

    #[test]
    fn tokens_ctl_and_ows() {
        for good in [&b"GET"[..], b"x-a", b"!#$%&'*+-.^_`|~09azAZ"] {
            assert!(is_token(good), "{:?}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b""[..],
            b"a b",
            b"a:b",
            b"a\"",
            b"(x)",
            b"a/b",
            b"\x80",
            b"a\x7f",
        ] {
            assert!(!is_token(bad), "{:?}", String::from_utf8_lossy(bad));
        }
        let ctl: Vec<u8> = (0..=255u8).filter(|&b| is_ctl(b)).collect();
        let want: Vec<u8> = (0..0x20u8).filter(|&b| b != b'\t').chain([0x7f]).collect();
        assert_eq!(ctl, want);
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b"  "), b"");
        assert_eq!(trim_ows(b"\r x"), b"\r x", "only SP and HTAB are OWS");
    }
}
