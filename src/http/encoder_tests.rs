//! The encoder, table-driven over an in-memory wire: each row is a sequence of app actions, the
//! exact bytes that reach the wire, how many writes carried them, the outcome and the final
//! state.

use super::*;

const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

/// Records every `write_all` as one write.
#[derive(Default)]
struct MemoryWire {
    writes: Vec<Vec<u8>>,
    /// The request body was not read to its end.
    body_left: bool,
    /// Every write fails (the client is gone).
    broken_pipe: bool,
}

impl Wire for MemoryWire {
    fn write_all(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        if self.broken_pipe {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.writes.push(parts.concat());
        Ok(())
    }

    fn body_consumed(&mut self) -> bool {
        !self.body_left
    }

    fn body_done(&mut self) -> bool {
        !self.body_left
    }

    fn body_buffered(&mut self) -> bool {
        !self.body_left
    }

    fn date(&mut self) -> &[u8] {
        DATE
    }
}

type Fields = &'static [(&'static [u8], &'static [u8])];

const TEXT: Fields = &[(b"Content-Type", b"text/plain")];
const LENGTH_5: Fields = &[(b"Content-Length", b"5")];
const LENGTH_10: Fields = &[(b"Content-Length", b"10")];
const BAD_VALUE: Fields = &[(b"X-Bad", b"a\r\nSet-Cookie: x=1")];
const GRPC_OK: Fields = &[(b"grpc-status", b"0")];

/// What the app (or the request side) does, with the answer the encoder must give.
#[derive(Debug, Clone, Copy)]
enum Act {
    Start(u16, Fields, Result<(), Refusal>),
    Replace(u16, Fields, Result<(), Refusal>),
    Write(&'static [u8], Result<(), Refusal>),
    Hint(u64),
    /// `before_next(burst)`: false means the client is gone.
    Pull {
        burst: bool,
    },
    Chunk(&'static [u8], bool),
    /// A chunk of `COPY_LIMIT` bytes of `b'z'` (written from the app's memory).
    BigChunk,
    End,
    EndUnpulled,
    Fail,
    /// Reading the request body failed by the client's fault, answered with this status.
    BodyRefused(u16),
    /// The client left mid-body.
    BodyAbandoned,
    /// The app asked to close after its response.
    CloseAfter,
    /// ABI 1.3 `set_trailers`.
    Trailers(Fields, Result<(), Refusal>),
}

#[derive(Clone, Copy)]
struct Ctx {
    is_head: bool,
    version_minor: u8,
    keep_alive: bool,
    defer_flush: bool,
    hold_completing_write: bool,
}

const GET: Ctx = Ctx {
    is_head: false,
    version_minor: 1,
    keep_alive: true,
    defer_flush: false,
    hold_completing_write: false,
};
const HEAD: Ctx = Ctx {
    is_head: true,
    ..GET
};
const HTTP10: Ctx = Ctx {
    version_minor: 0,
    ..GET
};
const DEFERRED: Ctx = Ctx {
    defer_flush: true,
    ..GET
};
/// A request of an app whose calls never wait (`WS_APP_NONBLOCKING`).
const NONBLOCKING: Ctx = Ctx {
    hold_completing_write: true,
    ..DEFERRED
};

struct Row {
    name: &'static str,
    ctx: Ctx,
    /// Output of an earlier pipelined response already in `Scratch::out`.
    earlier: &'static [u8],
    wire: MemoryWire,
    acts: Vec<Act>,
    /// Bytes written, then bytes left buffered (deferred).
    written: String,
    held: String,
    writes: usize,
    outcome: (u16, u64, bool),
    state: State,
}

fn tail() -> String {
    format!(
        "Date: {}\r\nServer: webserver/{}\r\n\r\n",
        String::from_utf8_lossy(DATE),
        env!("CARGO_PKG_VERSION")
    )
}

/// A full head: status line, `fields` lines, then Date, Server and the empty line.
fn head(status_line: &str, fields: &[&str]) -> String {
    let mut s = format!("HTTP/1.1 {status_line}\r\n");
    for f in fields {
        s.push_str(f);
        s.push_str("\r\n");
    }
    s + &tail()
}

fn error(status: u16, reason: &str, close: bool, with_body: bool) -> String {
    let body = format!("{status} {reason}\n");
    let mut fields = vec![
        "Content-Type: text/plain; charset=utf-8".to_owned(),
        format!("Content-Length: {}", body.len()),
    ];
    if close {
        fields.push("Connection: close".into());
    }
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    head(&format!("{status} {reason}"), &fields) + if with_body { &body } else { "" }
}

fn row(name: &'static str, acts: Vec<Act>, written: String, outcome: (u16, u64, bool)) -> Row {
    Row {
        name,
        ctx: GET,
        earlier: b"",
        wire: MemoryWire::default(),
        acts,
        written,
        held: String::new(),
        writes: 1,
        outcome,
        state: State::Done,
    }
}

fn rows() -> Vec<Row> {
    use Act::*;
    let ok = Ok(());
    let chunked = head("200 OK", &["Transfer-Encoding: chunked"]);
    let big = "z".repeat(COPY_LIMIT);
    vec![
        row(
            "trailers set before the head: the hint gives way to chunked, they follow the last chunk",
            vec![
                Start(200, &[], ok),
                Trailers(GRPC_OK, ok),
                Hint(2),
                Chunk(b"hi", true),
                End,
            ],
            chunked.clone() + "2\r\nhi\r\n0\r\ngrpc-status: 0\r\n\r\n",
            (200, 2, true),
        ),
        row(
            "trailers set after the head still follow a chunked body; none after the end",
            vec![
                Start(200, &[], ok),
                Chunk(b"hi", true),
                Trailers(BAD_VALUE, Err(Refusal::Invalid)),
                Trailers(GRPC_OK, ok),
                End,
                Trailers(GRPC_OK, Err(Refusal::OutOfOrder)),
            ],
            chunked.clone() + "2\r\nhi\r\n0\r\ngrpc-status: 0\r\n\r\n",
            (200, 2, true),
        ),
        row(
            "trailers set again replace the earlier ones, which refused ones leave in place",
            vec![
                Start(200, &[], ok),
                Trailers(&[(b"grpc-status", b"2")], ok),
                Trailers(GRPC_OK, ok),
                Trailers(BAD_VALUE, Err(Refusal::Invalid)),
                Chunk(b"hi", true),
                End,
            ],
            chunked.clone() + "2\r\nhi\r\n0\r\ngrpc-status: 0\r\n\r\n",
            (200, 2, true),
        ),
        row(
            "trailers with the app's Content-Length are dropped",
            vec![
                Start(200, LENGTH_5, ok),
                Trailers(GRPC_OK, ok),
                Chunk(b"hello", true),
                End,
            ],
            head("200 OK", &["Content-Length: 5"]) + "hello",
            (200, 5, true),
        ),
        Row {
            ctx: HEAD,
            ..row(
                "HEAD: no trailers",
                vec![Start(200, &[], ok), Trailers(GRPC_OK, ok), EndUnpulled],
                head("200 OK", &[]),
                (200, 0, true),
            )
        },
        row(
            "hello: exact hint becomes Content-Length, one write",
            vec![
                Start(200, TEXT, ok),
                Hint(3),
                Pull { burst: false },
                Chunk(b"hi\n", true),
                Pull { burst: false },
                End,
            ],
            head("200 OK", &["Content-Type: text/plain", "Content-Length: 3"]) + "hi\n",
            (200, 3, true),
        ),
        row(
            "unknown length on 1.1 is chunked",
            vec![
                Start(200, &[], ok),
                Chunk(b"a", true),
                Chunk(b"", true),
                Chunk(b"bc", true),
                End,
            ],
            chunked.clone() + "1\r\na\r\n2\r\nbc\r\n0\r\n\r\n",
            (200, 3, true),
        ),
        Row {
            ctx: HTTP10,
            ..row(
                "unknown length on 1.0 is close-delimited",
                vec![Start(200, &[], ok), Chunk(b"abc", true), End],
                head("200 OK", &["Connection: close"]) + "abc",
                (200, 3, false),
            )
        },
        Row {
            ctx: HTTP10,
            ..row(
                "known length on 1.0 keeps the connection",
                vec![Start(200, LENGTH_5, ok), Chunk(b"hello", true), End],
                head("200 OK", &["Content-Length: 5", "Connection: keep-alive"]) + "hello",
                (200, 5, true),
            )
        },
        Row {
            ctx: HEAD,
            ..row(
                "HEAD: GET's Content-Length from the hint, no body pulled",
                vec![Start(200, &[], ok), Hint(5), EndUnpulled],
                head("200 OK", &["Content-Length: 5"]),
                (200, 0, true),
            )
        },
        Row {
            ctx: HEAD,
            ..row(
                "HEAD without a known length: no framing header",
                vec![Start(200, &[], ok), EndUnpulled],
                head("200 OK", &[]),
                (200, 0, true),
            )
        },
        row(
            "204 sends no body and no length",
            vec![Start(204, LENGTH_5, ok), Chunk(b"hello", true), End],
            head("204 No Content", &[]),
            (204, 0, true),
        ),
        row(
            "304 sends no body",
            vec![Start(304, &[], ok), Chunk(b"x", true), End],
            head("304 Not Modified", &[]),
            (304, 0, true),
        ),
        row(
            "no chunks at all: Content-Length 0 whatever the hint",
            vec![Start(200, &[], ok), Hint(7), End],
            head("200 OK", &["Content-Length: 0"]),
            (200, 0, true),
        ),
        row(
            "never called start_response: 500, connection kept",
            vec![Chunk(b"x", false)],
            error(500, "Internal Server Error", false, true),
            (500, 0, true),
        ),
        Row {
            ctx: HEAD,
            ..row(
                "500 to HEAD has the length but no body",
                vec![EndUnpulled],
                error(500, "Internal Server Error", false, false),
                (500, 0, true),
            )
        },
        row(
            "start_response twice without replace: 500",
            vec![
                Start(200, &[], ok),
                Start(201, &[], Err(Refusal::OutOfOrder)),
                Chunk(b"x", false),
            ],
            error(500, "Internal Server Error", false, true),
            (500, 0, true),
        ),
        row(
            "replace before the head: the second response stands",
            vec![Start(200, TEXT, ok), Replace(201, &[], ok), End],
            head("201 Created", &["Content-Length: 0"]),
            (201, 0, true),
        ),
        row(
            "an invalid start_response, then a valid one without replace, stands",
            vec![
                Start(200, BAD_VALUE, Err(Refusal::Invalid)),
                Start(202, &[], ok),
                End,
            ],
            head("202 Accepted", &["Content-Length: 0"]),
            (202, 0, true),
        ),
        row(
            "an invalid start_response alone: 500 without the app's headers",
            vec![Start(200, BAD_VALUE, Err(Refusal::Invalid)), End],
            error(500, "Internal Server Error", false, true),
            (500, 0, true),
        ),
        row(
            "status outside 200..=599: 500",
            vec![Start(99, &[], Err(Refusal::Invalid)), End],
            error(500, "Internal Server Error", false, true),
            (500, 0, true),
        ),
        row(
            "write before start_response is refused; the later response stands",
            vec![
                Write(b"early", Err(Refusal::OutOfOrder)),
                Start(200, &[], ok),
                Chunk(b"late", true),
                End,
            ],
            chunked.clone() + "4\r\nlate\r\n0\r\n\r\n",
            (200, 4, true),
        ),
        Row {
            writes: 2,
            ..row(
                "write sends the head and its bytes at once, before the body",
                vec![
                    Start(200, &[], ok),
                    Write(b"early", ok),
                    Write(b"", ok),
                    Chunk(b"x", true),
                    End,
                ],
                chunked.clone() + "5\r\nearly\r\n1\r\nx\r\n0\r\n\r\n",
                (200, 6, true),
            )
        },
        row(
            "start_response after the head: refused, the response goes on",
            vec![
                Start(200, &[], ok),
                Chunk(b"a", true),
                Replace(500, &[], Err(Refusal::OutOfOrder)),
                End,
            ],
            chunked.clone() + "1\r\na\r\n0\r\n\r\n",
            (200, 1, true),
        ),
        row(
            "write after the response ended is refused and sends nothing",
            vec![
                Start(200, LENGTH_5, ok),
                Write(b"hello", ok),
                End,
                Write(b"more", Err(Refusal::OutOfOrder)),
            ],
            head("200 OK", &["Content-Length: 5"]) + "hello",
            (200, 5, true),
        ),
        Row {
            ctx: NONBLOCKING,
            writes: 0,
            held: error(500, "Internal Server Error", false, true),
            ..row(
                "a never-blocking app's first write longer than Content-Length: a clean 500",
                vec![
                    Start(200, LENGTH_5, ok),
                    Write(b"hello world", Err(Refusal::Invalid)),
                    End,
                ],
                String::new(),
                (500, 0, true),
            )
        },
        Row {
            state: State::Broken,
            ..row(
                "any other app's first write longer than Content-Length: truncated, close",
                vec![
                    Start(200, LENGTH_5, ok),
                    Write(b"hello world", Err(Refusal::ClientGone)),
                    End,
                ],
                head("200 OK", &["Content-Length: 5"]) + "hello",
                (200, 5, false),
            )
        },
        row(
            "first chunk longer than Content-Length: a clean 500",
            vec![Start(200, LENGTH_5, ok), Chunk(b"hello world", false)],
            error(500, "Internal Server Error", false, true),
            (500, 0, true),
        ),
        Row {
            state: State::Broken,
            ..row(
                "longer than Content-Length mid-body: truncated, close",
                vec![
                    Start(200, LENGTH_5, ok),
                    Chunk(b"hel", true),
                    Chunk(b"lo world", false),
                ],
                head("200 OK", &["Content-Length: 5"]) + "hello",
                (200, 5, false),
            )
        },
        Row {
            state: State::Broken,
            ..row(
                "a hint shorter than the body: truncated, close",
                vec![Start(200, &[], ok), Hint(3), Chunk(b"hello", false)],
                head("200 OK", &["Content-Length: 3"]) + "hel",
                (200, 3, false),
            )
        },
        Row {
            state: State::Broken,
            ..row(
                "shorter than Content-Length: close",
                vec![Start(200, LENGTH_10, ok), Chunk(b"hello", true), End],
                head("200 OK", &["Content-Length: 10"]) + "hello",
                (200, 5, false),
            )
        },
        Row {
            state: State::Broken,
            ..row(
                "next fails mid-body: no last-chunk, close",
                vec![Start(200, &[], ok), Chunk(b"partial", true), Fail],
                chunked.clone() + "7\r\npartial\r\n",
                (200, 7, false),
            )
        },
        row(
            "call fails before the head: 500",
            vec![Start(200, TEXT, ok), Fail],
            error(500, "Internal Server Error", false, true),
            (500, 0, true),
        ),
        row(
            "request body over --max-body: 413 and close, whatever the app sets",
            vec![BodyRefused(413), Start(200, &[], ok), Chunk(b"x", false)],
            error(413, "Content Too Large", true, true),
            (413, 0, false),
        ),
        row(
            "request body too slow: 408 and close, whatever the app sets",
            vec![BodyRefused(408), Start(400, TEXT, ok), Chunk(b"x", false)],
            error(408, "Request Timeout", true, true),
            (408, 0, false),
        ),
        row(
            "malformed request body, the app answers its own 500: 400 and close",
            vec![BodyRefused(400), Start(500, TEXT, ok), Chunk(b"x", false)],
            error(400, "Bad Request", true, true),
            (400, 0, false),
        ),
        row(
            "malformed request body, the app fails: 400 and close",
            vec![BodyRefused(400), Fail],
            error(400, "Bad Request", true, true),
            (400, 0, false),
        ),
        Row {
            writes: 0,
            state: State::ClientGone,
            ..row(
                "the client left mid-body: nothing is sent whatever the app does; 499",
                vec![
                    BodyAbandoned,
                    Start(500, TEXT, Err(Refusal::ClientGone)),
                    Chunk(b"x", false),
                    Fail,
                ],
                String::new(),
                (499, 0, false),
            )
        },
        row(
            "the app asks to close: Connection: close, not reusable",
            vec![Start(200, &[], ok), CloseAfter, End],
            head("200 OK", &["Content-Length: 0", "Connection: close"]),
            (200, 0, false),
        ),
        Row {
            wire: MemoryWire {
                body_left: true,
                ..Default::default()
            },
            ..row(
                "request body left unread: Connection: close",
                vec![Start(200, &[], ok), End],
                head("200 OK", &["Content-Length: 0", "Connection: close"]),
                (200, 0, false),
            )
        },
        Row {
            wire: MemoryWire {
                broken_pipe: true,
                ..Default::default()
            },
            writes: 0,
            state: State::ClientGone,
            ..row(
                "client gone: write says so, later calls too",
                vec![
                    Start(200, &[], ok),
                    Write(b"x", Err(Refusal::ClientGone)),
                    Write(b"y", Err(Refusal::ClientGone)),
                    Replace(200, &[], Err(Refusal::ClientGone)),
                    Chunk(b"z", false),
                ],
                String::new(),
                (200, 1, false),
            )
        },
        Row {
            writes: 2,
            ..row(
                "a chunk of COPY_LIMIT leaves in one write with the head",
                vec![Start(200, &[], ok), BigChunk, End],
                chunked.clone() + &format!("{:x}\r\n{big}\r\n0\r\n\r\n", COPY_LIMIT),
                (200, COPY_LIMIT as u64, true),
            )
        },
        Row {
            writes: 3,
            ..row(
                "burst chunks are coalesced, a slow one flushes",
                vec![
                    Start(200, &[], ok),
                    Pull { burst: false },
                    Chunk(b"a", true),
                    Pull { burst: false },
                    Chunk(b"b", true),
                    Pull { burst: true },
                    Chunk(b"c", true),
                    Pull { burst: false },
                    End,
                ],
                chunked.clone() + "1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n",
                (200, 3, true),
            )
        },
        Row {
            ctx: DEFERRED,
            earlier: b"EARLIER;",
            writes: 0,
            held: "EARLIER;".to_owned() + &head("200 OK", &["Content-Length: 2"]) + "ok",
            ..row(
                "defer_flush leaves the response behind the earlier ones, unwritten",
                vec![
                    Start(200, &[], ok),
                    Hint(2),
                    Pull { burst: false },
                    Chunk(b"ok", true),
                    Pull { burst: false },
                    End,
                ],
                String::new(),
                (200, 2, true),
            )
        },
        Row {
            ctx: NONBLOCKING,
            earlier: b"EARLIER;",
            writes: 0,
            held: "EARLIER;".to_owned() + &head("200 OK", &["Content-Length: 5"]) + "hello",
            ..row(
                "a never-blocking app's write that completes its body is held with the batch",
                vec![Start(200, LENGTH_5, ok), Write(b"hello", ok), End],
                String::new(),
                (200, 5, true),
            )
        },
        Row {
            ctx: Ctx {
                is_head: true,
                ..NONBLOCKING
            },
            writes: 0,
            held: head("200 OK", &["Content-Length: 5"]),
            ..row(
                "a never-blocking app's write to a HEAD response is held with the batch",
                vec![Start(200, LENGTH_5, ok), Write(b"hello", ok), End],
                String::new(),
                (200, 0, true),
            )
        },
        Row {
            ctx: NONBLOCKING,
            earlier: b"EARLIER;",
            held: "world".to_owned(),
            ..row(
                "a never-blocking app's write that leaves its body short is sent at once",
                vec![
                    Start(200, LENGTH_10, ok),
                    Write(b"hello", ok),
                    Write(b"world", ok),
                    End,
                ],
                "EARLIER;".to_owned() + &head("200 OK", &["Content-Length: 10"]) + "hello",
                (200, 10, true),
            )
        },
        Row {
            ctx: DEFERRED,
            earlier: b"EARLIER;",
            writes: 1,
            ..row(
                "any other app's write is sent at once, even the one that completes its body",
                vec![Start(200, LENGTH_5, ok), Write(b"hello", ok), End],
                "EARLIER;".to_owned() + &head("200 OK", &["Content-Length: 5"]) + "hello",
                (200, 5, true),
            )
        },
        Row {
            ctx: DEFERRED,
            earlier: b"EARLIER;",
            writes: 0,
            held: "EARLIER;".to_owned() + &error(500, "Internal Server Error", false, true),
            ..row(
                "an error response keeps the earlier pipelined ones",
                vec![Start(200, TEXT, ok), Fail],
                String::new(),
                (500, 0, true),
            )
        },
        Row {
            ctx: DEFERRED,
            writes: 0,
            held: chunked.clone() + "1\r\nx\r\n0\r\n\r\n",
            ..row(
                "a head encoded but still buffered counts as sent: no replacing it",
                vec![
                    Start(200, &[], ok),
                    Chunk(b"x", true),
                    Replace(201, &[], Err(Refusal::OutOfOrder)),
                    End,
                ],
                String::new(),
                (200, 1, true),
            )
        },
    ]
}

#[test]
fn encoder_table() {
    for mut row in rows() {
        let mut scratch = Scratch::default();
        scratch.out.extend_from_slice(row.earlier);
        let context = ResponseContext {
            is_head: row.ctx.is_head,
            version_minor: row.ctx.version_minor,
            keep_alive: row.ctx.keep_alive,
            defer_flush: row.ctx.defer_flush,
            frames_heads: false,
            keep_fields: false,
            hold_completing_write: row.ctx.hold_completing_write,
        };
        let big = vec![b'z'; COPY_LIMIT];
        let mut encoder = Encoder::new(&mut row.wire, &mut scratch, context, "table");
        for (i, act) in row.acts.iter().enumerate() {
            let at = format!("{}: act {i} {act:?}", row.name);
            match *act {
                Act::Start(status, fields, want) => {
                    assert_eq!(
                        encoder.start_response(status, b"", fields.iter().copied(), false),
                        want,
                        "{at}"
                    )
                }
                Act::Replace(status, fields, want) => {
                    assert_eq!(
                        encoder.start_response(status, b"", fields.iter().copied(), true),
                        want,
                        "{at}"
                    )
                }
                Act::Write(data, want) => assert_eq!(encoder.write(data), want, "{at}"),
                Act::Hint(n) => encoder.set_length_hint(Some(n)),
                Act::Pull { burst } => assert!(encoder.before_next(burst), "{at}"),
                Act::Chunk(data, want) => assert_eq!(encoder.chunk(data), want, "{at}"),
                Act::BigChunk => assert!(encoder.chunk(&big), "{at}"),
                Act::End => encoder.end(),
                Act::EndUnpulled => encoder.end_unpulled(),
                Act::Fail => encoder.fail(),
                Act::BodyRefused(status) => encoder.request_body_refused(status),
                Act::BodyAbandoned => encoder.request_body_abandoned(),
                Act::CloseAfter => encoder.close_after(),
                Act::Trailers(fields, want) => {
                    assert_eq!(encoder.set_trailers(fields.iter().copied()), want, "{at}")
                }
            }
        }
        let state = encoder.state();
        let outcome = encoder.finish();
        let name = row.name;
        assert_eq!(state, row.state, "{name}: state");
        assert_eq!(
            (outcome.status, outcome.body_bytes, outcome.reusable),
            row.outcome,
            "{name}: outcome"
        );
        let written = String::from_utf8(row.wire.writes.concat()).unwrap();
        assert_eq!(written, row.written, "{name}: bytes written");
        assert_eq!(
            row.wire.writes.len(),
            row.writes,
            "{name}: number of writes"
        );
        assert_eq!(
            String::from_utf8_lossy(&scratch.out),
            row.held,
            "{name}: bytes held"
        );
    }
}

#[test]
fn chunk_size_lines() {
    let mut buf = [0u8; CHUNK_SIZE_LINE];
    assert_eq!(chunk_size_line(&mut buf, 0), b"0\r\n");
    assert_eq!(chunk_size_line(&mut buf, COPY_LIMIT), b"4000\r\n");
    assert_eq!(
        chunk_size_line(&mut buf, usize::MAX),
        b"ffffffffffffffff\r\n"
    );
}

#[test]
fn interim_responses_only_before_the_final_head() {
    let mut wire = MemoryWire::default();
    let mut scratch = Scratch::default();
    let context = ResponseContext {
        is_head: false,
        version_minor: 1,
        keep_alive: true,
        defer_flush: true,
        frames_heads: false,
        keep_fields: false,
        hold_completing_write: false,
    };
    let mut encoder = Encoder::new(&mut wire, &mut scratch, context, "interim");
    assert!(encoder.may_send_interim(), "nothing set yet");
    assert_eq!(
        encoder.start_response(200, b"", TEXT.iter().copied(), false),
        Ok(())
    );
    assert!(encoder.may_send_interim(), "set but not encoded");
    assert!(encoder.chunk(b"x"));
    assert!(
        !encoder.may_send_interim(),
        "the head is encoded (buffered counts)"
    );
    encoder.end();
    assert!(!encoder.may_send_interim());
}

/// The thread's scratch keeps its trailer buffer from one response to the next: the next
/// response sends none of the previous one's trailers.
#[test]
fn a_response_after_one_with_trailers_has_none() {
    let mut scratch = Scratch::default();
    for (trailers, last_chunk) in [
        (GRPC_OK, "0\r\ngrpc-status: 0\r\n\r\n"),
        (&[][..], "0\r\n\r\n"),
    ] {
        let mut wire = MemoryWire::default();
        let mut encoder = Encoder::new(&mut wire, &mut scratch, context(false), "t");
        encoder
            .start_response(200, b"", [].into_iter(), false)
            .unwrap();
        if !trailers.is_empty() {
            encoder.set_trailers(trailers.iter().copied()).unwrap();
        }
        assert!(encoder.chunk(b"hi"));
        encoder.end();
        encoder.finish();
        let sent = String::from_utf8(wire.writes.concat()).unwrap();
        assert!(
            sent.ends_with(&format!("2\r\nhi\r\n{last_chunk}")),
            "{sent}"
        );
    }
}

fn context(defer_flush: bool) -> ResponseContext {
    ResponseContext {
        is_head: false,
        version_minor: 1,
        keep_alive: true,
        defer_flush,
        frames_heads: false,
        keep_fields: true,
        hold_completing_write: false,
    }
}

/// A response suspended with its head set sends the head with what was held (earlier pipelined
/// responses) when it is suspended, as a stream's client must see it start; its body resumes on
/// another wire.
#[test]
fn a_suspended_response_sends_its_head_with_what_was_held() {
    let (mut first, mut second) = (MemoryWire::default(), MemoryWire::default());
    let mut scratch = Scratch::default();
    scratch.hold_error(404, DATE);
    let mut encoder = Encoder::new(&mut first, &mut scratch, context(true), "t");
    encoder
        .start_response(200, b"", TEXT.iter().copied(), false)
        .unwrap();
    let suspended = encoder.suspend();
    let sent = String::from_utf8(first.writes.concat()).unwrap();
    assert_eq!(first.writes.len(), 1, "one write when the request parks");
    assert!(sent.starts_with("HTTP/1.1 404 "), "{sent}");
    let head_at = sent.find("HTTP/1.1 200 OK\r\n").expect("the head is out");
    assert!(
        sent[head_at..].contains("Content-Type: text/plain\r\n"),
        "{sent}"
    );
    assert!(sent.contains("Transfer-Encoding: chunked\r\n"), "{sent}");
    assert!(sent.ends_with("\r\n\r\n"), "no body byte yet: {sent}");
    let mut encoder = Encoder::resume(&mut second, &mut scratch, suspended, "t", true);
    assert!(encoder.chunk(b"late"));
    encoder.end();
    let outcome = encoder.finish();
    assert_eq!((outcome.status, outcome.reusable), (200, true));
    let rest = String::from_utf8(second.writes.concat()).unwrap();
    assert_eq!(rest, "4\r\nlate\r\n0\r\n\r\n");
}

/// A head set while the request body is unread waits for its first body byte: the connection's
/// reuse depends on whether the app reads that body to its end.
#[test]
fn a_suspended_response_keeps_its_head_while_the_request_body_is_unread() {
    let (mut first, mut second) = (MemoryWire::default(), MemoryWire::default());
    first.body_left = true;
    let mut scratch = Scratch::default();
    let mut encoder = Encoder::new(&mut first, &mut scratch, context(false), "t");
    encoder
        .start_response(200, b"", TEXT.iter().copied(), false)
        .unwrap();
    let suspended = encoder.suspend();
    assert!(first.writes.is_empty(), "{:?}", first.writes);
    let mut encoder = Encoder::resume(&mut second, &mut scratch, suspended, "t", true);
    assert!(encoder.chunk(b"late"));
    encoder.end();
    encoder.finish();
    let sent = String::from_utf8(second.writes.concat()).unwrap();
    assert!(sent.starts_with("HTTP/1.1 200 OK\r\n"), "{sent}");
    assert!(sent.ends_with("4\r\nlate\r\n0\r\n\r\n"), "{sent}");
}

/// Giving up: the status if the app set no response yet, else a cut body; never keep-alive.
/// Resuming while draining withdraws keep-alive, in the head if it waits still.
#[test]
fn giving_up_on_a_deferred_response() {
    for (head_set, keep_alive_resume) in [(false, true), (true, true), (false, false)] {
        let mut wire = MemoryWire::default();
        let mut scratch = Scratch::default();
        let mut encoder = Encoder::new(&mut wire, &mut scratch, context(false), "t");
        if head_set {
            encoder
                .start_response(200, b"", TEXT.iter().copied(), false)
                .unwrap();
        }
        let suspended = encoder.suspend();
        let mut encoder =
            Encoder::resume(&mut wire, &mut scratch, suspended, "t", keep_alive_resume);
        if keep_alive_resume {
            encoder.give_up(504);
        } else {
            encoder
                .start_response(200, b"", TEXT.iter().copied(), false)
                .unwrap();
            encoder.end();
        }
        let outcome = encoder.finish();
        let sent = String::from_utf8(wire.writes.concat()).unwrap();
        assert!(!outcome.reusable, "{sent}");
        match (head_set, keep_alive_resume) {
            (false, true) => {
                assert_eq!(outcome.status, 504);
                assert!(sent.starts_with("HTTP/1.1 504 "), "{sent}");
            }
            (true, _) => {
                let (head, body) = sent.split_once("\r\n\r\n").unwrap();
                assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{sent}");
                assert_eq!(body, "", "a cut body must not end: {sent}");
            }
            (false, false) => assert!(sent.contains("Connection: close\r\n"), "{sent}"),
        }
    }
}

/// Held responses leave before a body read (or a pull) while the app's head waits after them in
/// the output: the head is not sent then, and goes out whole with the body; the access log gets
/// the fields once the head is complete.
#[test]
fn a_pending_head_stays_in_the_output_while_held_responses_leave() {
    let mut wire = MemoryWire::default();
    let mut scratch = Scratch::default();
    scratch.hold_error(404, DATE);
    let held = scratch.held().to_vec();
    let mut encoder = Encoder::new(&mut wire, &mut scratch, context(true), "pending");
    assert_eq!(
        encoder.start_response(200, b"", TEXT.iter().copied(), false),
        Ok(())
    );
    assert!(encoder.flush_before_read());
    assert!(encoder.before_next(false));
    assert_eq!(
        encoder
            .pending_response()
            .and_then(|(_, f)| f.get(b"content-type")),
        Some(&b"text/plain"[..])
    );
    assert!(encoder.chunk(b"x"));
    encoder.end();
    assert_eq!(encoder.finish().status, 200);
    assert_eq!(wire.writes, [held]);
    let response = head(
        "200 OK",
        &["Content-Type: text/plain", "Transfer-Encoding: chunked"],
    ) + "1\r\nx\r\n0\r\n\r\n";
    assert_eq!(String::from_utf8_lossy(scratch.held()), response);
    assert_eq!(
        scratch.fields().get(b"content-type"),
        Some(&b"text/plain"[..])
    );
}

/// A head a [`FramingWire`] took: status, field lines, Content-Length, add Date, add Server.
type TakenHead = (u16, Vec<u8>, Option<u64>, bool, bool);

/// A wire that frames heads itself (as an HTTP/2 stream does): records the heads it takes.
#[derive(Default)]
struct FramingWire {
    memory: MemoryWire,
    heads: Vec<TakenHead>,
}

impl Wire for FramingWire {
    fn write_all(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        self.memory.write_all(parts)
    }

    fn body_consumed(&mut self) -> bool {
        self.memory.body_consumed()
    }

    fn body_done(&mut self) -> bool {
        self.memory.body_done()
    }

    fn body_buffered(&mut self) -> bool {
        self.memory.body_buffered()
    }

    fn date(&mut self) -> &[u8] {
        DATE
    }

    fn take_head(&mut self, head: FramedHead<'_>) -> bool {
        self.heads.push((
            head.status,
            head.fields.bytes().to_vec(),
            head.content_length,
            head.add_date,
            head.add_server,
        ));
        true
    }
}

/// A wire that takes the head as fields gets the app's validated lines, the length the HTTP/1
/// head would have said (HEAD's too) and whether Date and Server are the server's to add; no
/// head bytes reach its output, only the body. The access log still gets the fields.
#[test]
fn a_wire_that_frames_heads_gets_the_fields_and_only_the_body_as_bytes() {
    let http2 = ResponseContext {
        version_minor: 0,
        frames_heads: true,
        keep_fields: true,
        ..context(true)
    };
    let own_date: Fields = &[(b"Date", DATE), (b"Content-Length", b"5")];
    // HEAD, the app's fields, the lines and length the wire gets, and whether it adds Date.
    type Case = (bool, Fields, &'static [u8], Option<u64>, bool);
    let cases: [Case; 4] = [
        (false, TEXT, b"Content-Type: text/plain\r\n", None, true),
        (false, LENGTH_5, b"", Some(5), true),
        (true, LENGTH_5, b"", Some(5), true),
        (
            false,
            own_date,
            b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
            Some(5),
            false,
        ),
    ];
    for (is_head, fields, lines, length, add_date) in cases {
        let mut wire = FramingWire::default();
        let mut scratch = Scratch::default();
        let context = ResponseContext { is_head, ..http2 };
        let mut encoder = Encoder::new(&mut wire, &mut scratch, context, "framed");
        assert_eq!(
            encoder.start_response(200, b"", fields.iter().copied(), false),
            Ok(())
        );
        if !is_head {
            assert!(encoder.chunk(b"hello"));
        }
        encoder.end();
        let outcome = encoder.finish();
        assert_eq!((outcome.status, outcome.complete), (200, true));
        let body: &[u8] = if is_head { b"" } else { b"hello" };
        assert_eq!(scratch.held(), body, "{fields:?}");
        assert_eq!(wire.heads, [(200, lines.to_vec(), length, add_date, true)]);
        assert!(wire.memory.writes.is_empty());
        assert_eq!(scratch.fields().bytes(), lines);
    }
}
