use super::*;

fn lookup<'a>(pairs: &'a [WsPair], name: &str) -> Option<&'a [u8]> {
    pairs
        .iter()
        // SAFETY: the pairs point into the Environ that outlives this lookup.
        .map(|p| unsafe { (p.name.as_slice(), p.value.as_slice()) })
        .find(|(n, _)| *n == name.as_bytes())
        .map(|(_, v)| v)
}

#[test]
fn builds_cgi_variables() {
    let headers: Vec<(&[u8], &[u8])> = vec![
        (b"Host", b"example.com:8080"),
        (b"Accept", b"text/html"),
        (b"X-Tag", b"a"),
        (b"Content-Type", b"text/plain"),
        (b"x-tag", b"b"),
        (b"X_Tag", b"spoofed"),
        (b"Cookie", b"a=1"),
        (b"Cookie", b"b=2"),
    ];
    let mut environ = Environ::default();
    let pairs = environ.build(RequestParts {
        method: b"GET",
        target: Target {
            path: b"/a%20b/%ZZ",
            query: b"x=%20&y",
            authority: None,
        },
        version_minor: 1,
        headers: headers.iter().copied(),
        local: Some("127.0.0.1:8888".parse().unwrap()),
        remote: Peer::Tcp("10.0.0.7:5555".parse().unwrap()),
        url_scheme: b"http",
        strip_forwarding: false,
        flags: WS_REQ_MULTITHREAD,
        spelled: None,
        client_cert: None,
        noted: None,
    });
    let expect: &[(&str, &[u8])] = &[
        ("REQUEST_METHOD", b"GET"),
        ("SCRIPT_NAME", b""),
        ("PATH_INFO", b"/a b/%ZZ"),
        ("webserver.raw_path", b"/a%20b/%ZZ"),
        ("QUERY_STRING", b"x=%20&y"),
        ("SERVER_PROTOCOL", b"HTTP/1.1"),
        ("HTTP_HOST", b"example.com:8080"),
        ("HTTP_ACCEPT", b"text/html"),
        ("HTTP_X_TAG", b"a, b"),
        ("CONTENT_TYPE", b"text/plain"),
        ("HTTP_COOKIE", b"a=1; b=2"),
        ("SERVER_NAME", b"example.com"),
        ("SERVER_PORT", b"8888"),
        ("REMOTE_ADDR", b"10.0.0.7"),
        ("REMOTE_PORT", b"5555"),
        ("webserver.multithread", b"true"),
        ("webserver.multiprocess", b"false"),
    ];
    for (name, value) in expect {
        assert_eq!(lookup(pairs, name), Some(*value), "{name}");
    }
    assert_eq!(lookup(pairs, "CONTENT_LENGTH"), None);
    let tags = pairs
        .iter()
        // SAFETY: as in lookup.
        .filter(|p| unsafe { p.name.as_slice() } == b"HTTP_X_TAG")
        .count();
    assert_eq!(
        tags, 1,
        "repeats are joined into one variable, the underscore form dropped"
    );
    assert_eq!(environ.var(b"PATH_INFO"), Some(&b"/a b/%ZZ"[..]));
    assert_eq!(environ.var(b"HTTP_X_TAG"), Some(&b"a, b"[..]));
    assert_eq!(environ.var(b"HTTP_NOPE"), None);
}

#[test]
fn absolute_form_authority_overrides_host() {
    let headers: [(&[u8], &[u8]); 1] = [(b"Host", b"ignored.example")];
    let mut environ = Environ::default();
    let pairs = environ.build(RequestParts {
        method: b"GET",
        target: Target {
            path: b"/",
            query: b"",
            authority: Some(b"target.example:81"),
        },
        version_minor: 1,
        headers: headers.iter().copied(),
        local: Some("127.0.0.1:8888".parse().unwrap()),
        remote: Peer::Tcp("10.0.0.7:5555".parse().unwrap()),
        url_scheme: b"http",
        strip_forwarding: false,
        flags: 0,
        spelled: None,
        client_cert: None,
        noted: None,
    });
    assert_eq!(lookup(pairs, "SERVER_NAME"), Some(&b"target.example"[..]));
}

/// `GET /` over HTTP/1.1 with `headers`, between `local` and `remote`.
fn get_root<'a, H>(
    headers: H,
    local: Option<SocketAddr>,
    remote: Peer,
    spelled: Option<&'a AddrVars>,
) -> RequestParts<'a, H> {
    RequestParts {
        method: b"GET",
        target: Target {
            path: b"/",
            query: b"",
            authority: None,
        },
        version_minor: 1,
        headers,
        local,
        remote,
        url_scheme: b"http",
        strip_forwarding: false,
        flags: 0,
        spelled,
        client_cert: None,
        noted: None,
    }
}

#[test]
fn a_repeated_content_length_is_one_number() {
    // The parser let it through only because the values are equal.
    let headers: [(&[u8], &[u8]); 3] = [
        (b"Content-Length", b"5"),
        (b"X-A", b"1"),
        (b"content-length", b"5"),
    ];
    let mut environ = Environ::default();
    let pairs = environ.build(RequestParts {
        method: b"POST",
        ..get_root(headers.iter().copied(), None, Peer::Unix, None)
    });
    assert_eq!(lookup(pairs, "CONTENT_LENGTH"), Some(&b"5"[..]));
}

#[test]
fn a_unix_socket_request_has_an_empty_remote_addr_and_its_hosts_port() {
    let mut environ = Environ::default();
    let unix = |environ: &mut Environ, host: &'static [u8]| -> Vec<(String, Vec<u8>)> {
        let headers: Vec<(&[u8], &[u8])> = if host.is_empty() {
            vec![]
        } else {
            vec![(b"Host", host)]
        };
        let pairs = environ.build(get_root(headers.iter().copied(), None, Peer::Unix, None));
        ["SERVER_NAME", "SERVER_PORT", "REMOTE_ADDR", "REMOTE_PORT"]
            .iter()
            .filter_map(|name| Some((name.to_string(), lookup(pairs, name)?.to_vec())))
            .collect()
    };
    let pair = |name: &str, value: &[u8]| (name.to_string(), value.to_vec());
    assert_eq!(
        unix(&mut environ, b"app.example:8080"),
        [
            pair("SERVER_NAME", b"app.example"),
            pair("SERVER_PORT", b"8080"),
            pair("REMOTE_ADDR", b""),
        ]
    );
    assert_eq!(
        unix(&mut environ, b""),
        [
            pair("SERVER_NAME", b"localhost"),
            pair("SERVER_PORT", b"80"),
            pair("REMOTE_ADDR", b""),
        ]
    );
    assert_eq!(port_of(b"[::1]:81"), Some(&b"81"[..]));
    assert_eq!(port_of(b"h:"), None);
}

#[test]
fn forwarding_headers_are_left_out_when_asked_and_the_client_is_what_it_is_told() {
    let headers: [(&[u8], &[u8]); 5] = [
        (b"Host", b"x"),
        (b"X-Forwarded-For", b"1.2.3.4"),
        (b"forwarded", b"for=1.2.3.4"),
        (b"X-Real-IP", b"1.2.3.4"),
        (b"X-Forwarded-Proto", b"https"),
    ];
    for strip in [true, false] {
        let mut environ = Environ::default();
        let pairs = environ.build(RequestParts {
            url_scheme: b"https",
            strip_forwarding: strip,
            ..get_root(
                headers.iter().copied(),
                Some("127.0.0.1:8888".parse().unwrap()),
                Peer::Tcp("[2001:db8::7]:0".parse().unwrap()),
                None,
            )
        });
        for name in [
            "HTTP_X_FORWARDED_FOR",
            "HTTP_FORWARDED",
            "HTTP_X_REAL_IP",
            "HTTP_X_FORWARDED_PROTO",
        ] {
            assert_eq!(
                lookup(pairs, name).is_some(),
                !strip,
                "{name}, strip {strip}"
            );
        }
        assert_eq!(lookup(pairs, "HTTP_HOST"), Some(&b"x"[..]));
        assert_eq!(lookup(pairs, "REMOTE_ADDR"), Some(&b"2001:db8::7"[..]));
        assert_eq!(lookup(pairs, "REMOTE_PORT"), Some(&b"0"[..]));
        assert_eq!(lookup(pairs, "webserver.url_scheme"), Some(&b"https"[..]));
        assert_eq!(environ.remote_host().to_string(), "2001:db8::7");
    }
}

#[test]
fn strip_port_handles_ipv6() {
    assert_eq!(strip_port(b"[::1]:80"), b"[::1]");
    assert_eq!(strip_port(b"h:1"), b"h");
    assert_eq!(strip_port(b"h"), b"h");
}

/// The addresses spelled once per connection give the same variables as spelling them
/// per request.
#[test]
fn spelled_addresses_match_the_per_request_spelling() {
    let locals = [
        Some("127.0.0.1:8888".parse().unwrap()),
        Some("[::1]:443".parse().unwrap()),
        None,
    ];
    let remotes = [
        Peer::Tcp("10.0.0.7:5555".parse().unwrap()),
        Peer::Tcp(
            "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535"
                .parse()
                .unwrap(),
        ),
        Peer::Tcp("[::ffff:192.0.2.1]:1".parse().unwrap()),
        Peer::Unix,
    ];
    let build = |local, remote, spelled: Option<&AddrVars>| {
        let mut environ = Environ::default();
        environ.build(get_root(std::iter::empty(), local, remote, spelled));
        environ
            .vars()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect::<Vec<_>>()
    };
    for local in locals {
        for remote in remotes {
            let spelled = AddrVars::new(local, remote);
            let want = build(local, remote, None);
            assert_eq!(
                build(local, remote, Some(&spelled)),
                want,
                "{local:?} {remote:?}"
            );
        }
    }
}

/// An app that reads the parts gets an environ without its fields: no `HTTP_*`, the first
/// Content-Type and Content-Length, and `SERVER_NAME` from the noted host; the access log
/// still finds the fields under their environ names (`log_lookup.rs`), the first of a
/// repeated one.
#[test]
fn fields_left_to_the_parts_are_not_in_the_environ_but_the_log_finds_them() {
    use crate::app::parts::Head;
    use crate::logging::Lookup;
    let headers: [(&[u8], &[u8]); 6] = [
        (b"Host", b"example.com:8080"),
        (b"User-Agent", b"probe/1"),
        (b"Content-Type", b"text/plain"),
        (b"X-Tag", b"a"),
        (b"x-tag", b"b"),
        (b"X-Forwarded-For", b"1.2.3.4"),
    ];
    let mut environ = Environ::default();
    let noted = environ.parts.fill(Head {
        version: 11,
        method: b"GET",
        scheme: b"",
        authority: b"",
        target: b"/",
        fields: headers.iter().copied(),
        strip_forwarding: true,
        block: &[],
    });
    let pairs = environ.build(RequestParts {
        noted: Some(noted),
        ..get_root(
            headers.iter().copied(),
            Some("127.0.0.1:8888".parse().unwrap()),
            Peer::Tcp("10.0.0.7:5555".parse().unwrap()),
            None,
        )
    });
    assert!(
        pairs
            .iter()
            // SAFETY: as in lookup.
            .all(|p| !unsafe { p.name.as_slice() }.starts_with(b"HTTP_")),
        "no HTTP_ variable"
    );
    assert_eq!(lookup(pairs, "CONTENT_TYPE"), Some(&b"text/plain"[..]));
    assert_eq!(lookup(pairs, "SERVER_NAME"), Some(&b"example.com"[..]));
    assert_eq!(lookup(pairs, "REMOTE_ADDR"), Some(&b"10.0.0.7"[..]));
    assert_eq!(environ.get(b"HTTP_USER_AGENT"), Some(&b"probe/1"[..]));
    assert_eq!(environ.get(b"HTTP_X_TAG"), Some(&b"a"[..]));
    assert_eq!(environ.get(b"HTTP_CONTENT_TYPE"), None);
    assert_eq!(
        environ.get(b"HTTP_X_FORWARDED_FOR"),
        None,
        "the policy held"
    );
    let mut seen = Vec::new();
    environ.for_each(&mut |name, value| {
        if name.starts_with(b"HTTP_") || name == b"CONTENT_TYPE" {
            seen.push((name.to_vec(), value.to_vec()));
        }
    });
    let seen: Vec<(&[u8], &[u8])> = seen
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect();
    assert_eq!(
        seen,
        [
            (&b"CONTENT_TYPE"[..], &b"text/plain"[..]),
            (b"HTTP_HOST", b"example.com:8080"),
            (b"HTTP_USER_AGENT", b"probe/1"),
            (b"HTTP_X_TAG", b"a"),
            (b"HTTP_X_TAG", b"b"),
        ]
    );
    // Built again for an app without the flag, the fields are back.
    let pairs = environ.build(get_root(headers.iter().copied(), None, Peer::Unix, None));
    assert_eq!(lookup(pairs, "HTTP_X_TAG"), Some(&b"a, b"[..]));
}

/// Names equal but for ASCII case share a bit (else a repeated field would not be joined).
#[test]
fn names_equal_but_for_case_share_a_bit() {
    for (a, b) in [
        (&b"X-Tag"[..], &b"x-TAG"[..]),
        (b"cookie", b"Cookie"),
        (b"a", b"A"),
        (b"", b""),
    ] {
        assert_eq!(name_bit(a), name_bit(b), "{a:?} {b:?}");
    }
}
