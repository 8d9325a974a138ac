use super::*;

fn head(vars: &[(&str, &str)]) -> Request<()> {
    head_from_environ(vars.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
        .unwrap()
        .request
}

#[test]
fn method_uri_version_and_headers_come_from_the_environ() {
    let req = head(&[
        ("REQUEST_METHOD", "POST"),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", "/items/7"),
        ("QUERY_STRING", "a=1&b=x%20y"),
        ("SERVER_PROTOCOL", "HTTP/1.0"),
        ("CONTENT_TYPE", "application/json"),
        ("CONTENT_LENGTH", "12"),
        ("HTTP_HOST", "example.test:8080"),
        ("HTTP_X_REQUEST_ID", "abc"),
        ("HTTP_ACCEPT", "text/html, application/json"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("webserver.url_scheme", "http"),
    ]);
    assert_eq!(req.method(), Method::POST);
    assert_eq!(req.uri(), "/items/7?a=1&b=x%20y");
    assert_eq!(req.uri().query(), Some("a=1&b=x%20y"));
    assert_eq!(req.version(), Version::HTTP_10);
    let h = req.headers();
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["content-length"], "12");
    assert_eq!(h["host"], "example.test:8080");
    assert_eq!(h["x-request-id"], "abc");
    assert_eq!(h["accept"], "text/html, application/json");
    assert_eq!(h.len(), 5, "no CGI-only variable becomes a header: {h:?}");
}

#[test]
fn the_decoded_path_is_encoded_again() {
    let req = head(&[
        ("REQUEST_METHOD", "GET"),
        ("PATH_INFO", "/a b/caf\u{e9}/100%/x?y#z"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
    ]);
    assert_eq!(req.uri().path(), "/a%20b/caf%C3%A9/100%25/x%3Fy%23z");
    assert_eq!(req.uri().query(), None);
    assert_eq!(req.version(), Version::HTTP_11);
}

#[test]
fn path_bytes_that_need_no_escape_stay_literal() {
    let path = "/users/:id/@me/-._~!$&'()*+,;=";
    let req = head(&[("REQUEST_METHOD", "GET"), ("PATH_INFO", path)]);
    assert_eq!(req.uri().path(), path);
}

#[test]
fn the_query_stays_as_sent_but_for_bytes_a_uri_cannot_hold() {
    let query = |raw: &[u8]| {
        let vars = [
            (&b"REQUEST_METHOD"[..], &b"GET"[..]),
            (b"PATH_INFO", b"/q"),
            (b"QUERY_STRING", raw),
        ];
        let req = head_from_environ(vars).unwrap().request;
        req.uri().query().map(str::to_owned)
    };
    let same = "a=caf%C3%A9&b=caf\u{e9}&c=!$&'()*+,;=:@/?[]{}|\\^`~%";
    assert_eq!(query(same.as_bytes()).as_deref(), Some(same));
    assert_eq!(
        query(br#"q="<b>"&x=1"#).as_deref(),
        Some("q=%22%3Cb%3E%22&x=1")
    );
    assert_eq!(
        query(b"a=caf\xe9 b#c\x7f").as_deref(),
        Some("a=caf%E9%20b%23c%7F"),
        "not UTF-8: non-ASCII bytes escaped, as controls, space and # are"
    );
}

#[test]
fn asterisk_form_stays_an_asterisk() {
    let req = head(&[("REQUEST_METHOD", "OPTIONS"), ("PATH_INFO", "*")]);
    assert_eq!(req.uri(), "*");
    assert_eq!(req.uri().path(), "*");
}

#[test]
fn an_empty_path_becomes_root() {
    let req = head(&[("REQUEST_METHOD", "GET"), ("PATH_INFO", "")]);
    assert_eq!(req.uri(), "/");
}

#[test]
fn a_body_is_announced_by_a_length_other_than_zero_or_a_transfer_coding() {
    let body = |vars: &[(&str, &str)]| {
        let mut all = vec![("REQUEST_METHOD", "POST")];
        all.extend_from_slice(vars);
        head_from_environ(all.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
            .unwrap()
            .has_body
    };
    assert!(!body(&[]));
    assert!(!body(&[("CONTENT_LENGTH", "0")]));
    assert!(body(&[("CONTENT_LENGTH", "10")]));
    assert!(body(&[("HTTP_TRANSFER_ENCODING", "chunked")]));
}

#[test]
fn an_upgrade_field_is_noted() {
    let upgrade = |vars: &[(&str, &str)]| {
        head_from_environ(vars.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
            .unwrap()
            .has_upgrade
    };
    assert!(!upgrade(&[
        ("REQUEST_METHOD", "GET"),
        ("HTTP_CONNECTION", "upgrade")
    ]));
    assert!(upgrade(&[
        ("REQUEST_METHOD", "GET"),
        ("HTTP_UPGRADE", "websocket")
    ]));
}

#[test]
fn long_and_repeated_header_names_survive() {
    let long = format!("HTTP_X_{}", "A".repeat(100));
    let req = head(&[
        ("REQUEST_METHOD", "GET"),
        (&long, "long"),
        ("HTTP_X_A", "1"),
        ("HTTP_X_A", "2"),
    ]);
    let name = format!("x-{}", "a".repeat(100));
    assert_eq!(req.headers()[name.as_str()], "long");
    let repeated: Vec<_> = req.headers().get_all("x-a").iter().collect();
    assert_eq!(repeated, ["1", "2"]);
}

#[test]
fn known_names_are_the_names_the_conversion_gives() {
    for field in [
        "HTTP_HOST",
        "HTTP_USER_AGENT",
        "HTTP_ACCEPT",
        "HTTP_ACCEPT_ENCODING",
        "HTTP_ACCEPT_LANGUAGE",
        "HTTP_CONNECTION",
        "HTTP_COOKIE",
        "HTTP_AUTHORIZATION",
        "HTTP_CACHE_CONTROL",
        "HTTP_ORIGIN",
        "HTTP_REFERER",
        "HTTP_UPGRADE",
        "HTTP_TE",
        "HTTP_TRANSFER_ENCODING",
        "HTTP_IF_NONE_MATCH",
        "HTTP_IF_MODIFIED_SINCE",
        "HTTP_RANGE",
        "HTTP_SEC_WEBSOCKET_KEY",
        "HTTP_SEC_WEBSOCKET_VERSION",
        "HTTP_SEC_WEBSOCKET_PROTOCOL",
        "HTTP_SEC_WEBSOCKET_EXTENSIONS",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
    ] {
        let known = known_header_name(field.as_bytes());
        assert!(known.is_some(), "{field} is not in the table");
        assert_eq!(known, converted_header_name(field.as_bytes()), "{field}");
    }
    assert_eq!(known_header_name(b"HTTP_X_REQUEST_ID"), None);
}

#[test]
fn more_fields_than_the_stack_holds_all_arrive_in_order() {
    let names: Vec<String> = (0..STACK_FIELDS * 2 + 3)
        .map(|i| format!("HTTP_X_F{i}"))
        .collect();
    let mut vars = vec![("REQUEST_METHOD".to_owned(), "GET".to_owned())];
    vars.extend(names.iter().map(|n| (n.clone(), format!("v{n}"))));
    vars.push(("HTTP_X_F0".to_owned(), "again".to_owned()));
    let req = head_from_environ(vars.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
        .unwrap()
        .request;
    assert_eq!(req.headers().len(), names.len() + 1);
    for name in &names {
        let header = name["HTTP_".len()..].replace('_', "-").to_ascii_lowercase();
        assert_eq!(req.headers()[header.as_str()], format!("v{name}"));
    }
    let repeated: Vec<_> = req.headers().get_all("x-f0").iter().collect();
    assert_eq!(repeated, ["vHTTP_X_F0", "again"]);
}

#[test]
fn a_bad_method_is_an_error() {
    let err = head_from_environ([(&b"REQUEST_METHOD"[..], &b"GE T"[..])]);
    assert_eq!(err.err(), Some(BuildError::Method));
}

#[test]
fn a_recycled_response_map_brings_none_of_its_fields_into_the_next_request() {
    let mut response = http::HeaderMap::new();
    for (name, value) in [
        ("content-type", "text/plain"),
        ("x-app", "a"),
        ("x-app", "b"),
    ] {
        response.append(name, HeaderValue::from_static(value));
    }
    recycle_headers(response);
    let req = head(&[
        ("REQUEST_METHOD", "GET"),
        ("PATH_INFO", "/"),
        ("HTTP_HOST", "example.test"),
        ("HTTP_X_APP", "request"),
    ]);
    let h = req.headers();
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(h["host"], "example.test");
    assert_eq!(
        h.get_all("x-app").iter().collect::<Vec<_>>(),
        ["request"],
        "{h:?}"
    );
    assert!(!h.contains_key("content-type"));
}

#[test]
fn heads_of_every_size_keep_their_target_and_values() {
    // Around each copy's limit: the small inline copy, the larger one, and a buffer of its own.
    for len in [
        1,
        SMALL_HEAD - 10,
        SMALL_HEAD,
        INLINE_HEAD - 10,
        INLINE_HEAD,
        3 * INLINE_HEAD,
    ] {
        let value = "v".repeat(len);
        let req = head(&[
            ("REQUEST_METHOD", "GET"),
            ("PATH_INFO", "/size"),
            ("QUERY_STRING", "q=1"),
            ("HTTP_X_FILL", &value),
            ("HTTP_HOST", "example.test"),
        ]);
        assert_eq!(req.uri(), "/size?q=1", "{len}");
        assert_eq!(req.headers()["x-fill"], value.as_str(), "{len}");
        assert_eq!(req.headers()["host"], "example.test", "{len}");
    }
}

#[test]
fn field_names_are_the_names_http_parses() {
    for name in [
        "host",
        "user-agent",
        "accept",
        "accept-encoding",
        "accept-language",
        "content-type",
        "content-length",
        "te",
        "connection",
        "cookie",
        "authorization",
        "Host",
        "User-Agent",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Content-Type",
        "Content-Length",
        "Connection",
        "Cookie",
        "Authorization",
        "HOST",
        "grpc-timeout",
        "X-Request-Id",
    ] {
        let parsed = HeaderName::from_bytes(name.as_bytes()).ok();
        assert_eq!(field_name(name.as_bytes()), parsed, "{name}");
    }
    assert_eq!(field_name(b"bad name"), None);
}

#[test]
fn a_content_length_is_read_as_its_digits() {
    assert_eq!(length_of(b"12"), Some(12));
    assert_eq!(length_of(b" 7 "), Some(7));
    assert_eq!(length_of(b"18446744073709551615"), Some(u64::MAX));
    for bad in [
        &b""[..],
        b" ",
        b"18446744073709551616",
        b"1x",
        b"-1",
        b"0x10",
    ] {
        assert_eq!(length_of(bad), None, "{:?}", bad.escape_ascii().to_string());
    }
}

#[test]
fn the_fields_framing_is_noted_once_each() {
    let noted = |vars: &[(&str, &str)]| {
        let mut all = vec![("REQUEST_METHOD", "POST"), ("PATH_INFO", "/")];
        all.extend_from_slice(vars);
        let head =
            head_from_environ(all.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))).unwrap();
        (
            head.has_body,
            head.has_upgrade,
            head.has_expect,
            head.length,
        )
    };
    assert_eq!(noted(&[]), (false, false, false, None));
    assert_eq!(
        noted(&[("CONTENT_LENGTH", "5"), ("HTTP_EXPECT", "100-continue")]),
        (true, false, true, Some(5))
    );
    assert_eq!(
        noted(&[("CONTENT_LENGTH", "0"), ("HTTP_UPGRADE", "websocket")]),
        (false, true, false, Some(0))
    );
    assert_eq!(
        noted(&[("SERVER_PROTOCOL", "HTTP/2")]),
        (true, false, false, None),
        "an HTTP/2 stream may carry a body without a field saying so"
    );
}

#[test]
fn a_target_escaped_from_the_parts_keeps_the_clients_own_escapes() {
    let escaped = |target: &[u8]| {
        let mut buf = vec![0u8; 3 * target.len() + 1];
        let room = buf.len();
        let mut out = &mut buf[..];
        escaped_target(target, &mut out);
        let len = room - out.len();
        String::from_utf8(buf[..len].to_vec()).unwrap()
    };
    assert_eq!(
        escaped(br#"/a%2Fb/"c"?q="<>"&r=1"#),
        "/a%2Fb/%22c%22?q=%22%3C%3E%22&r=1"
    );
    assert_eq!(escaped(b"/caf\xc3\xa9 x"), "/caf%C3%A9%20x");
    assert_eq!(escaped(b"http://example.test/p\"x?y"), "/p%22x?y");
    assert_eq!(escaped(b"http://example.test"), "/");
    assert_eq!(escaped(b"*"), "*");
}
