use super::*;

#[test]
fn field_grammar() {
    assert!(valid_header_value(b"a\tb \x80") && valid_header_value(b""));
    assert!(
        !valid_header_value(b"a\rb")
            && !valid_header_value(b"a\nb")
            && !valid_header_value(b"\0")
            && !valid_header_value(b"\x7f")
    );
    // Every hop-by-hop name in any case; other names of the same lengths are not.
    let names: [(&[u8], bool); 12] = [
        (b"Connection", true),
        (b"KEEP-ALIVE", true),
        (b"Transfer-Encoding", true),
        (b"TE", true),
        (b"trailer", true),
        (b"Upgrade", true),
        (b"Proxy-Connection", true),
        (b"Content-Length", false),
        (b"tx", false),
        (b"Trailed", false),
        (b"keep_alive", false),
        (b"transfer_encoding", false),
    ];
    for (name, hop) in names {
        assert_eq!(is_hop_by_hop(name), hop, "{name:?}");
    }
}

#[test]
fn trailer_fields_are_checked_and_read_back() {
    let mut out = Vec::new();
    let ok: [(&[u8], &[u8]); 2] = [(b"grpc-status", b"0"), (b"Grpc-Message", b"a b")];
    encode_trailer_fields(&mut out, ok.iter().copied()).unwrap();
    assert_eq!(out, b"grpc-status: 0\r\nGrpc-Message: a b\r\n");
    assert_eq!(read_lines(&out).collect::<Vec<_>>(), ok);
    for bad in [
        (&b"Content-Length"[..], &b"3"[..]),
        (b"transfer-encoding", b"chunked"),
        (b"bad name", b"v"),
        (b"x", b"a\r\nInjected: 1"),
    ] {
        let fields = [(&b"x-ok"[..], &b"1"[..]), bad];
        assert!(encode_trailer_fields(&mut out, fields.into_iter()).is_err());
        assert_eq!(
            out, b"grpc-status: 0\r\nGrpc-Message: a b\r\n",
            "nothing half-kept after what was there"
        );
    }
}

type Pairs<'a> = &'a [(&'a [u8], &'a [u8])];

/// The fields set after `b"held"` (an earlier response in the output), and the head.
fn set(
    status: u16,
    reason: &[u8],
    headers: Pairs<'_>,
) -> Result<(ResponseFields, Vec<u8>), String> {
    let mut fields = ResponseFields::default();
    let mut out = b"held".to_vec();
    let result = fields.set(&mut out, status, reason, headers.iter().copied());
    if result.is_err() {
        assert_eq!(out, b"held", "nothing half-written");
    }
    let head = out.split_off(4);
    result.map(|()| (fields, head)).map_err(|e| e.to_string())
}

#[test]
fn valid_fields_are_written_in_order_without_content_length() {
    let (mut f, head) = set(
        201,
        b"Made",
        &[
            (b"X-A", b"1"),
            (b"Content-Length", b"12"),
            (b"content-length", b"12"),
            (b"X-B", b"\tobs-text \x80"),
            (b"X-C", b""),
            (b"X-D", b" a: b:"),
        ],
    )
    .unwrap();
    let lines = b"X-A: 1\r\nX-B: \tobs-text \x80\r\nX-C: \r\nX-D:  a: b:\r\n";
    assert_eq!(head, [&b"HTTP/1.1 201 Made\r\n"[..], lines].concat());
    assert_eq!(f.content_length(), Some(12));
    assert_eq!(f.lines_in(&head).bytes(), lines);
    let headers: Vec<_> = f.lines_in(&head).headers().collect();
    let want: Pairs<'_> = &[
        (b"X-A", b"1"),
        (b"X-B", b"\tobs-text \x80"),
        (b"X-C", b""),
        (b"X-D", b" a: b:"),
    ];
    assert_eq!(headers, want);
    assert_eq!(f.lines_in(&head).get(b"x-c"), Some(&b""[..]));
    assert_eq!(f.kept().bytes(), b"", "kept only when asked");
    f.keep(&head);
    assert_eq!(f.kept().bytes(), lines);
    assert_eq!(f.has_date_and_server(), (false, false));
    let (g, _) = set(
        200,
        b"",
        &[(b"DATE", b"x"), (b"server", b"y"), (b"Dates", b"z")],
    )
    .unwrap();
    assert_eq!(g.has_date_and_server(), (true, true));
}

#[test]
fn each_rule_refuses_with_its_message() {
    let cases: &[(u16, &[u8], Pairs<'_>, &str)] = &[
        (199, b"", &[], "status 199 is not in 200..=599"),
        (600, b"", &[], "status 600 is not in 200..=599"),
        (200, b"a\r\nb", &[], "reason phrase contains CR, LF"),
        (
            200,
            b"",
            &[(b"X Bad", b"v")],
            "\"X Bad\": name is not a token",
        ),
        (200, b"", &[(b"", b"v")], "name is not a token"),
        (
            200,
            b"",
            &[(b"X", b"a\r\nSet-Cookie: y")],
            "value contains CR, LF",
        ),
        (200, b"", &[(b"X", b"a\0")], "value contains CR, LF, NUL"),
        (200, b"", &[(b"X", b"\x7f")], "value contains"),
        (200, b"", &[(b"Connection", b"close")], "hop-by-hop headers"),
        (
            200,
            b"",
            &[(b"Transfer-Encoding", b"chunked")],
            "hop-by-hop",
        ),
        (
            200,
            b"",
            &[(b"Content-Length", b"+5")],
            "not one decimal number",
        ),
        (
            200,
            b"",
            &[(b"Content-Length", b"")],
            "not one decimal number",
        ),
        (
            200,
            b"",
            &[(b"Content-Length", b"99999999999999999999")],
            "not one decimal",
        ),
        (
            200,
            b"",
            &[(b"Content-Length", b"1"), (b"Content-Length", b"2")],
            "not one decimal",
        ),
    ];
    for (status, reason, headers, want) in cases {
        let got = set(*status, reason, headers).err();
        assert!(
            got.as_deref().is_some_and(|e| e.contains(want)),
            "{status} {reason:?} {headers:?}: {got:?}"
        );
    }
}

#[test]
fn a_refused_set_leaves_nothing_behind() {
    let mut f = ResponseFields::default();
    let mut out = Vec::new();
    f.set(
        &mut out,
        200,
        b"Fine",
        [(&b"X-A"[..], &b"1"[..])].into_iter(),
    )
    .unwrap();
    f.keep(&out);
    out.clear();
    let bad = [(&b"Content-Length"[..], &b"3"[..]), (b"X\n", b"v")];
    assert!(f.set(&mut out, 200, b"", bad.into_iter()).is_err());
    assert!(out.is_empty());
    assert_eq!(f.content_length(), None);
    assert_eq!(f.kept().headers().count(), 0);
}

#[test]
fn amending_the_status_rewrites_the_line_and_keeps_the_fields() {
    let mut f = ResponseFields::default();
    let mut out = b"held".to_vec();
    let app = [(&b"ETag"[..], &b"\"x\""[..])];
    f.set(&mut out, 200, b"Fine", app.into_iter()).unwrap();
    let added = [(&b"Content-Range"[..], &b"bytes 0-1/9"[..])];
    f.amend(&mut out, 4, Some(206), 2, added.into_iter());
    assert_eq!(
        out,
        b"heldHTTP/1.1 206 Partial Content\r\nETag: \"x\"\r\nContent-Range: bytes 0-1/9\r\n"
    );
    let fields: Vec<_> = f.lines_in(&out[4..]).headers().collect();
    assert_eq!(fields, [app[0], added[0]]);
    assert_eq!(f.content_length(), Some(2));
    f.amend(&mut out, 4, None, 2, std::iter::empty());
    assert!(out.starts_with(b"heldHTTP/1.1 206 Partial Content\r\n"));
}

#[test]
fn the_word_at_a_time_value_check_agrees_with_the_byte_rule() {
    let byte_ok = |b: u8| b == b'\t' || (b >= 0x20 && b != 0x7f);
    // Every byte at every position of a 17-byte value (two words and a tail), among
    // obs-text and printable neighbours that must not hide or fake a match.
    for fill in [b'a', 0x80, 0xff, b' ', 0x21] {
        for at in 0..17 {
            for b in 0..=255u8 {
                let mut value = [fill; 17];
                value[at] = b;
                assert_eq!(
                    valid_header_value(&value),
                    byte_ok(b) && byte_ok(fill),
                    "{value:?}"
                );
            }
        }
    }
}
