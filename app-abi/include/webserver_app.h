/*
 * webserver_app.h — the normative C ABI between `webserver` and the apps it loads.
 *
 * ABI 1.3. This header is the specification; app-abi/src/raw.rs mirrors it and the layout test
 * (app-abi/tests/layout.rs) compiles this file and compares every size, alignment and offset.
 *
 * An app is a shared library exporting one or more static `ws_app` descriptors. The server is
 * started as `webserver LIB:SYMBOL`; SYMBOL names a `ws_app` (data, not a function), so one library
 * may hold several apps (`libdemo.so:api`, `libdemo.so:admin`).
 *
 * Language: this header needs C99 or later (`cc -std=c99`), or C++. In C++ define each descriptor
 * as `extern "C" const ws_app app = {...};`: a C++ `const` global has internal linkage and a
 * mangled name, so without `extern "C"` the server cannot find it. `webserver header` prints this
 * file; `webserver new NAME --lang c` writes it beside a starter app and its Makefile.
 *
 * Versioning: `WS_ABI_MAJOR` changes with any change of layout or meaning of an existing field;
 * `WS_ABI_MINOR` grows when fields are appended to a struct (every struct that crosses the boundary
 * starts with its own `size`, and fields past `size` are absent), or flags/error codes are added.
 * The server accepts a descriptor whose major equals its own and whose size is at least the 1.0 size,
 * whatever its minor: a 1.0 app runs unchanged on a 1.1 server. A struct the server fills (ws_host,
 * ws_init) may be older than the app's header: check WS_HAS_FIELD before using an appended field.
 * Only fixed-width integers, pointers and function pointers cross the boundary (no `bool`, no
 * enums), and the descriptor's fixed header (magic, major, minor, size, flags) never changes.
 *
 * Ownership — nothing is ever freed by the side that did not allocate it:
 *  - Server-owned: the ws_request, its environ array and every byte it points to, the io handle and
 *    the ws_host vtable. Valid from the start of `call` until the body's `close` returns (the host
 *    vtable and log_ctx live as long as the process). Do not keep pointers past `close`.
 *  - Borrowed: every pointer an app passes to a host callback (start_response, write, log, read's
 *    buffer) is only read or written during that call; the server copies what it keeps.
 *  - App-owned: a chunk returned by `next` must stay valid until the next `next` or `close` call;
 *    the body ctx is released by the app in `close`; app state lives from `init` to `shutdown`.
 *
 * Host I/O phases: `read`, `start_response` and `write` act on `io` and are answered while the
 * server is in the app's `call` or in the body's `next`, on the thread running it. So an app may
 * call start_response lazily from `next` (as PEP 3333 allows from the iterable) as long as no
 * body byte was sent, `write` there (its bytes go out before the chunk that `next` returns), and
 * `read` the request body there. During `close` the response is over: these three return
 * WS_ERR_STATE and do nothing (`read` leaves *n_read at 0). `log` is answered at any time, from
 * any thread, with ws_request.log_ctx or ws_init.log_ctx. After `close` returns, `io` must not
 * be used at all; no host callback may be called with `io` from another thread.
 *
 * Threads: `call`, `next` and `close` may run concurrently on many threads with the same app state,
 * unless the descriptor sets WS_APP_SINGLE_THREADED (the server then serialises `call` and `next`).
 * `init` runs once per process before any call; `shutdown` runs after the last `close`, never
 * concurrently, and counts against the stop's --graceful-timeout (it gets at least 1 s): a worker
 * whose `shutdown` has not returned by then logs it and exits without waiting further.
 * `waker_wake` and `waker_free` (ABI 1.1) are the only request callbacks that any thread may call
 * at any time.
 *
 * Deferred responses (ABI 1.1) — an app answers later without holding a server thread:
 *  - A body `next` may return WS_PENDING: no chunk now. The server parks the request: no serving
 *    thread waits for it. It calls `next` again, on any serving thread (one at a time, never
 *    concurrently for one request), after a `waker_wake` on a waker of that request, or after
 *    request-body bytes arrived if the app's last `try_read` answered WS_PENDING. A wake that comes
 *    while `next` runs is not lost: `next` is called again after it returns WS_PENDING. A spurious
 *    call is allowed: `next` may simply return WS_PENDING again. `start_response`, `write`, `read`
 *    and `try_read` may be called from that later `next` as from any `next` ("Host I/O phases").
 *  - `call` itself never pends: an async app returns WS_OK at once with a body whose `next` pends
 *    until the response head is ready (it then calls start_response in `next` and returns chunks).
 *  - Ownership does not change: the ws_request, its environ and every byte they point to, and
 *    `io`, stay valid and at the same address until `close` returns, however long the request is
 *    parked and on whichever thread it resumes; the app's chunk stays valid until the next `next`
 *    or `close`. A waker is app-owned from `waker_new` until the app's `waker_free` (exactly once,
 *    from any thread, before or after the request ended); the server keeps what it needs alive
 *    until then, so a late `waker_wake` is always safe and does nothing once `close` was called.
 *  - While a request is parked the server still enforces `--timeout` (parked time counts: the
 *    app is working), notices a client that disconnects, and on stop or hot swap waits for it up
 *    to --graceful-timeout. In each of these cases it calls `close` (no further `next`) on a serving
 *    thread, and the app cancels its work there. If no byte of the response was sent yet, a
 *    request past --timeout is answered 504 (Gateway Timeout); the connection is then closed.
 *    A response set by start_response goes out with its head as soon as `next` returns
 *    WS_PENDING (once the request body was read to its end), so a stream's client sees it
 *    start; from then on a timeout or a drain's end breaks the body off instead.
 *    A request still parked when --graceful-timeout runs out is closed the same way (503 Service
 *    Unavailable if nothing was sent), before the app's `shutdown`.
 *  - Back-pressure: the server reads request-body bytes only as `read`/`try_read` ask (a bounded
 *    buffer), and sends each chunk before it calls `next` again, so a slow client slows the app's
 *    producer and a slow app never lets a fast uploader grow memory. For an app that may pend (a
 *    1.1 descriptor), what the socket has no room for is copied and the request parked until the
 *    client has read it — no serving thread waits for a slow reader either; past --io-timeout
 *    without room the request is closed (its time waiting for the client does not count against
 *    --timeout). The chunk is the app's again when `next` or `close` is next called, as always.
 *  - A 1.0 app never returns WS_PENDING and never sees a difference (from a descriptor with minor
 *    0, 2 stays an unknown code of `next`: the request fails as before). An app that needs wakers
 *    checks WS_HAS_FIELD(init->host, ws_host, waker_free) in `init` and refuses to load on a 1.0
 *    server (whose ws_host ends at `log`) with a message that says to upgrade the server.
 *
 * Upgraded connections (ABI 1.2) — a connection that outlives its response:
 *  - During `call` or `next` (where start_response is answered), an app takes the connection with
 *    host->upgrade (raw bytes, any protocol it names in `Upgrade`) or host->websocket_accept
 *    (RFC 6455 messages: the server does the handshake, framing, masking, fragments, pings, the
 *    closing handshake, UTF-8 and size checks). Either call sends the 101 at once and gives a
 *    handle; the app then returns WS_OK with an empty body (or 0 from `next`): the request ends
 *    as usual (`close` is called, the 101 is logged, ws_request and `io` are freed), and the
 *    connection is the handle's. A 101 through start_response stays WS_ERR_INVALID.
 *  - Threads: stream_read/stream_write/stream_close and websocket_recv/websocket_send/
 *    websocket_close may be called from any thread at any time until the handle is closed; they
 *    never wait and never call into the app: "nothing now" is WS_PENDING. A handle is one kind:
 *    stream_read/stream_write on a WebSocket's, or websocket_recv/websocket_send on an
 *    upgrade's, answer WS_ERR_STATE (either close releases either kind).
 *  - Events are edges: a call that answered WS_PENDING arms exactly one later on_event with
 *    WS_EV_READABLE or WS_EV_WRITABLE, run on a serving thread, never two at once for one
 *    connection, never before the call that created the handle returned (serialised with `call`
 *    and `next` for a WS_APP_SINGLE_THREADED app). The first on_event (WS_EV_READABLE |
 *    WS_EV_WRITABLE) comes unasked once the request that upgraded has ended: reading and writing
 *    may be tried from then on. WS_EV_CLOSED and WS_EV_GOING_AWAY come unasked, once each. An event raised while on_event runs is delivered after it returns; a
 *    spurious event is allowed (the app simply gets WS_PENDING again). on_event may call *_close.
 *  - Ownership: the handle is the app's until its *_close (exactly once, also after
 *    WS_EV_CLOSED); after it the server starts no on_event and calls release(ctx) once none runs.
 *    A received message's bytes are the server's until the next websocket_recv or
 *    websocket_close on that handle. Bytes the client sent right after the request head are
 *    served by the first reads.
 *  - Drain (stop, hot swap): the connection stays with the generation that accepted it; it gets
 *    WS_EV_GOING_AWAY when the drain starts and is closed (a WebSocket with 1001) when
 *    --graceful-timeout runs out.
 *  - Versions: a 1.0 or 1.1 app sees an upgrade request as any request (and never
 *    WS_REQ_WEBSOCKET). A 1.2 app checks WS_HAS_FIELD(init->host, ws_host, websocket_close) in
 *    `init` and refuses a 1.1 server with a message that says to upgrade webserver.
 *
 * Trailers (ABI 1.3) — fields after the body, both ways:
 *  - Request: `request_trailers` hands the app the client's trailer fields once its body was read
 *    to the end. They never enter the environ (a trailer is not a header, RFC 9110 §6.5.2).
 *    HTTP/1.1's trailer section has the limits and checks of the chunked body (8 KiB, each line
 *    `token ":" value`, a malformed one is a 400 as a bad body is).
 *  - Response: `set_trailers` before the body ends. Over HTTP/2 they are a trailing HEADERS
 *    frame. Over HTTP/1.1 they follow the last chunk, whatever the request's TE says (every
 *    HTTP/1.1 recipient parses the chunked trailer section and may drop it, RFC 9112 §7.1.2): a
 *    response with trailers set before its head went out is sent chunked (the body's length
 *    hint gives way; an app's own Content-Length does not). Where the framing has no place for
 *    them (a Content-Length, an HTTP/1.0 client, HEAD, 204, 304) they are dropped (a debug line).
 *  - Versions: a 1.3 app checks WS_HAS_FIELD(init->host, ws_host, set_trailers) in `init` and
 *    refuses an older server with a message that says to upgrade webserver.
 *
 * Request parts (ABI 1.3) — the head as parsed, for an app that builds its own request object:
 *  - An app whose descriptor sets WS_APP_REQUEST_PARTS may call `request_parts` where `read` is
 *    answered (during `call` and `next`) and gets the method, the request-target as sent, HTTP/2's
 *    :scheme and :authority, and the header fields one by one, in order, as received (HTTP/2:
 *    lowercase names; repeated fields not joined; no Host made from :authority), instead of
 *    converting the environ back (HTTP_ names, decoded PATH_INFO, joined repeats).
 *  - The fields are valid as RFC 9110 §5 defines them, checked by the server while it parsed the
 *    head: every name is a token, and no value holds a control byte other than HTAB (bytes
 *    0x80-0xFF may appear). An app may take them as they are without checking them again.
 *  - The server's policy holds as for the environ: a field whose name has an underscore is left
 *    out, and so are Forwarded, X-Forwarded-<anything> and X-Real-IP from a peer not in
 *    --forwarded-allow-ips.
 *  - The environ of such an app carries no header fields: no HTTP_* variable (the fields are in
 *    the parts only, which saves the server building them), and ws_request.flags has
 *    WS_REQ_FIELDS_IN_PARTS to say so; ws_getenv(req, "HTTP_X", ...) finds nothing (except
 *    HTTP_HOST on an HTTP/2 request that sent no Host field: its :authority). It still has
 *    everything else: REQUEST_METHOD, SCRIPT_NAME, PATH_INFO, webserver.raw_path, QUERY_STRING,
 *    SERVER_PROTOCOL, CONTENT_TYPE and CONTENT_LENGTH (the first field of each), SERVER_NAME,
 *    SERVER_PORT, REMOTE_ADDR, REMOTE_PORT, webserver.url_scheme, SSL_CLIENT_*, and the
 *    webserver.multithread/multiprocess/run_once flags, with the values an app without the flag
 *    gets. The environ stays the reference for those (the client a trusted proxy named, the url
 *    scheme, the TLS client certificate).
 *  - Without the flag, or on a server that predates it (WS_HAS_FIELD(host, ws_host,
 *    request_parts) false), the app reads the environ, HTTP_* included.
 *  - An app that needs nothing the environ alone carries (the client a trusted proxy named,
 *    REMOTE_ADDR, SERVER_NAME, the url scheme, SSL_CLIENT_*, PATH_INFO decoded) also sets
 *    WS_APP_NO_ENVIRON, and the server builds no environ for it at all: ws_request.environ_len
 *    is 0 on every request (ws_getenv finds nothing), ws_request.flags still has
 *    WS_REQ_FIELDS_IN_PARTS and the WS_REQ_* facts, and the parts are the whole request head.
 *    What the server itself reports of the request (the access log) is unchanged. A server that
 *    predates the flag hands the full environ (minus HTTP_*) as before, so an app that sets it
 *    reads its requests the same way on either.
 *
 * App arguments (ABI 1.1): the words after LIB:SYMBOL on the command line reach `init` in
 * ws_init.args (present when WS_HAS_FIELD(init, ws_init, n_args)).
 *
 * Errors: host callbacks return 0 on success and a negative WS_ERR_* code on failure. No callback
 * ever unwinds: C++ exceptions and Rust panics must not cross this boundary.
 */
#ifndef WEBSERVER_APP_H
#define WEBSERVER_APP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "WSAP" in ASCII: a symbol that is not a descriptor almost never starts with it. */
#define WS_APP_MAGIC 0x50415357u
#define WS_ABI_MAJOR 1
#define WS_ABI_MINOR 3

/* ws_app.flags */
#define WS_APP_SINGLE_THREADED 0x1u /* the server never runs two `call`s of this app at once */
/* A deferred app (ABI 1.1) whose `call`, `next` and `close` never wait: they return at once, and
 * waiting is WS_PENDING and a wake (no blocking `read`). The server may then run them on its own
 * event thread (HTTP/2 streams on the HTTP/2 thread), with no hop to a serving thread; one that
 * waits there stalls every connection that thread serves. A hint: a server that does not know it
 * ignores it, so it came without a new minor. */
#define WS_APP_NONBLOCKING 0x2u
/* ABI 1.3: the app reads each request's head through host->request_parts ("Request parts"
 * below), so the server keeps the parsed parts for it. A hint: a server that does not know it
 * ignores it (and has no request_parts: the app reads the environ). */
#define WS_APP_REQUEST_PARTS 0x4u
/* ABI 1.3, with WS_APP_REQUEST_PARTS: the app reads nothing of the environ ("Request parts"
 * below), so the server builds none: ws_request.environ_len is 0. A hint: a server that does
 * not know it hands the environ as before, so it came without a new minor; without
 * WS_APP_REQUEST_PARTS it is ignored. */
#define WS_APP_NO_ENVIRON 0x8u
/* ABI 1.3 (read only from an app built against 1.3 or later): the app's `next` does nothing
 * once its body's bytes reach the body's length (length_hint, or its own Content-Length) but
 * return 0: the server then ends the response without asking it
 * (`close` follows as always), where nothing may follow the body (HTTP/1.1: trailers set before
 * the head make it chunked; over HTTP/2 `next` is asked until it returns 0, as trailers may
 * still come). Saves a `next` per response of known length. A hint: a server that does not know
 * it asks as before, so it came without a new minor. */
#define WS_APP_LENGTH_ENDS_BODY 0x10u

/* ws_request.flags (the same facts are in environ as webserver.multithread, ...) */
#define WS_REQ_MULTITHREAD 0x1u
#define WS_REQ_MULTIPROCESS 0x2u
#define WS_REQ_RUN_ONCE 0x4u
/* ABI 1.2: the request is a valid WebSocket opening handshake (GET, HTTP/1.1, Connection: upgrade,
 * Upgrade: websocket, Sec-WebSocket-Version: 13, a 16-byte base64 Sec-WebSocket-Key) and the
 * server can accept it: websocket_accept will succeed. Set only for apps whose descriptor says
 * minor >= 2, so older apps see the flags they always saw. */
#define WS_REQ_WEBSOCKET 0x8u
/* ABI 1.3: the header fields are in host->request_parts only, not in the environ (no HTTP_*
 * variables; "Request parts" above). Set for every request of an app whose descriptor sets
 * WS_APP_REQUEST_PARTS, never for another. */
#define WS_REQ_FIELDS_IN_PARTS 0x10u

/* ABI 1.2: the `events` of ws_conn_handler.on_event */
#define WS_EV_READABLE 0x1u   /* a read/recv that answered WS_PENDING may now give data, a message
                                 or the end */
#define WS_EV_WRITABLE 0x2u   /* a write/send that answered WS_PENDING may now be accepted */
#define WS_EV_CLOSED 0x4u     /* the connection ended (client, error, timeout, drain): reads report
                                 the end, writes return WS_ERR_CLIENT_GONE; call *_close to release */
#define WS_EV_GOING_AWAY 0x8u /* the server drains (stop, hot swap): it closes this connection
                                 (1001 for a WebSocket) after --graceful-timeout */

/* ABI 1.2: ws_message.kind and websocket_send's kind, the RFC 6455 opcodes */
#define WS_MSG_TEXT 1u   /* data is valid UTF-8 (the server checked it; send checks it too) */
#define WS_MSG_BINARY 2u
#define WS_MSG_CLOSE 8u  /* only from websocket_recv returning 0: the client's close */

/* start_response flags */
#define WS_RESPONSE_REPLACE 0x1u /* PEP 3333 exc_info: replace a response whose head is not sent */
#define WS_RESPONSE_CLOSE 0x2u   /* close the connection after this response (an app's
                                    `Connection: close`; the header itself is the server's). A
                                    host that predates it ignores it. */

/* ws_body.length_hint when the length is not known */
#define WS_LENGTH_UNKNOWN UINT64_MAX

/* log levels, as in Rust's `log` crate */
#define WS_LOG_ERROR 1u
#define WS_LOG_WARN 2u
#define WS_LOG_INFO 3u
#define WS_LOG_DEBUG 4u
#define WS_LOG_TRACE 5u

/* Return codes of host callbacks and of body `next` (negative = error). */
#define WS_OK 0
#define WS_ERR_CLIENT_GONE (-1) /* the client closed the connection or a write failed */
#define WS_ERR_TOO_LARGE (-2)   /* the request body exceeds the server's --max-body */
#define WS_ERR_TIMEOUT (-3)     /* the client was too slow */
#define WS_ERR_BAD_BODY (-4)    /* malformed chunked encoding or body shorter than declared */
#define WS_ERR_INVALID (-5)     /* invalid status, header name or value (CR, LF, NUL, non-token) */
#define WS_ERR_STATE (-6)       /* out of order: start_response twice without REPLACE, after the
                                   head was sent, write before start_response, read/write/
                                   start_response from `close` (see "Host I/O phases") */
#define WS_ERR_APP (-7)         /* the app failed (used by `next`; a panic in a Rust app) */

/* ABI 1.1. From ws_body.next: no chunk yet, the app will make progress later (see "Deferred
 * responses"). From host->try_read: no body byte is buffered now. Positive: not an error. */
#define WS_PENDING 2

/* ABI 1.2. send_file flags: answer the request's Range (and If-Range) from the file range; add
 * ETag and Last-Modified from the file's metadata where the app set none. */
#define WS_FILE_RANGES 0x1u
#define WS_FILE_VALIDATORS 0x2u

/* A byte slice. Never assumed NUL-terminated or UTF-8. `ptr` may be NULL only when `len` is 0. */
typedef struct ws_bytes {
    const uint8_t *ptr;
    size_t len;
} ws_bytes;

/* A (name, value) pair: an environ variable or a response header. */
typedef struct ws_pair {
    ws_bytes name;
    ws_bytes value;
} ws_pair;

/* ABI 1.2: what the app gives the server for an upgraded connection (upgrade, websocket_accept).
 * Copied during the call. */
typedef struct ws_conn_handler {
    uint32_t size; /* sizeof(ws_conn_handler) as the app knows it */
    uint32_t reserved;
    void *ctx; /* the app's, passed back to on_event and release */
    /* Required. On a serving thread, never two at once for one connection, never before the call
     * that created the handle returned. Must not block for long (it holds a serving thread, and
     * --timeout applies as to `call`). `events` is a set of WS_EV_* bits. */
    void (*on_event)(void *ctx, uint32_t events);
    /* Optional. Once, after the app's *_close and once no on_event runs: free ctx here. */
    void (*release)(void *ctx);
} ws_conn_handler;

/* ABI 1.2: one received message. `data` is server-owned and valid until the next websocket_recv
 * or websocket_close on the same handle (so an app may hold it while a send waits). */
typedef struct ws_message {
    uint32_t kind;       /* WS_MSG_* */
    uint16_t close_code; /* WS_MSG_CLOSE: the client's code; 1005 none given, 1006 no close frame */
    uint16_t reserved;
    ws_bytes data; /* the payload; for WS_MSG_CLOSE the reason */
} ws_message;

/* ABI 1.3: a request's head as the server parsed it (host->request_parts, "Request parts"
 * above). Server-owned, as every byte and pair it points to, valid until `close` returns. */
typedef struct ws_request_parts {
    uint32_t size;      /* sizeof(ws_request_parts) as the server knows it */
    uint16_t version;   /* 10 HTTP/1.0, 11 HTTP/1.1, 20 HTTP/2 */
    uint16_t reserved;
    ws_bytes method;
    ws_bytes scheme;    /* HTTP/2's :scheme; empty for HTTP/1 */
    ws_bytes authority; /* HTTP/2's :authority (empty when absent); empty for HTTP/1 */
    ws_bytes target;    /* HTTP/1: the request-target as sent (not decoded); HTTP/2: :path */
    const ws_pair *fields; /* the header fields in order, as received (see above) */
    size_t n_fields;
} ws_request_parts;

/*
 * Callbacks the server gives every request. `io` is the opaque handle from ws_request.io; read,
 * start_response and write are answered during `call` and `next` and return WS_ERR_STATE from
 * `close` ("Host I/O phases" above); log is answered always.
 */
typedef struct ws_host {
    uint32_t size; /* sizeof(ws_host) as the server knows it */
    uint32_t reserved;

    /* Pull request-body bytes into buf[0..cap). Sets *n_read. Returns WS_OK with *n_read > 0 for
     * data; WS_OK with *n_read == 0 at the end of the body (and forever after); a negative WS_ERR_*
     * on failure. The body is already de-chunked and limited to its declared length: reading never
     * returns bytes of the next request. The first read sends `100 Continue` if the client asked.
     * A failure that is the client's decides the response, whatever the app answers next:
     * WS_ERR_BAD_BODY → 400, WS_ERR_TIMEOUT → 408, WS_ERR_TOO_LARGE → 413 (if no head was sent),
     * WS_ERR_CLIENT_GONE → nothing more is sent. */
    int32_t (*read)(void *io, uint8_t *buf, size_t cap, size_t *n_read);

    /* Set the response status and headers (PEP 3333 start_response). `reason` may be empty (the
     * server then uses the standard reason phrase). Headers are validated and copied during the
     * call: names must be RFC 9110 tokens, values must not contain CR, LF or NUL; hop-by-hop
     * headers (Connection, Transfer-Encoding, Keep-Alive, ...) are the server's and rejected
     * (WS_RESPONSE_CLOSE asks for `Connection: close`). A second call needs WS_RESPONSE_REPLACE and succeeds only while no body byte was sent. */
    int32_t (*start_response)(void *io, uint16_t status, ws_bytes reason, const ws_pair *headers,
                              size_t n_headers, uint32_t flags);

    /* PEP 3333's legacy write(): send bytes now, before the returned body's chunks. Requires a
     * prior start_response. Bytes beyond the head's Content-Length go out cut to that length,
     * and the connection closes after them. For an app with WS_APP_NONBLOCKING (whose call
     * returns at once) a write that completes a body of known length may be held until the
     * call returns, and sent with the responses to pipelined requests, as the body's last chunk
     * would be; such an app's first write longer than its Content-Length gets WS_ERR_INVALID,
     * and the server answers 500. */
    int32_t (*write)(void *io, const uint8_t *buf, size_t len);

    /* The error stream (wsgi.errors): one message into the server's log, tagged with the app.
     * `log_ctx` is ws_request.log_ctx or ws_init.log_ctx. */
    void (*log)(const void *log_ctx, uint32_t level, const uint8_t *msg, size_t len);

    /* ABI 1.1 — present when `size` covers them: WS_HAS_FIELD(host, ws_host, waker_free). */

    /* Like read, but never waits: WS_OK with *n_read > 0; WS_OK with *n_read == 0 at the end of the
     * body; WS_PENDING when no byte is buffered now — the app then returns WS_PENDING from `next`
     * and the server calls `next` again once bytes arrived (no waker needed for that). Answered
     * where `read` is (during `call` and `next`); sends `100 Continue` like `read`. */
    int32_t (*try_read)(void *io, uint8_t *buf, size_t cap, size_t *n_read);

    /* A waker for the request behind `io`, answered during `call` and `next` on their thread;
     * NULL on failure (and from `close`). The app owns it until waker_free. */
    void *(*waker_new)(void *io);

    /* Ask the server to call `next` again. Any thread, any time, any number of times until
     * waker_free; after the request ended (close was called) it does nothing. A wake that comes
     * while `next` runs is not lost: the server calls `next` again afterwards. Never blocks on
     * the app, so it may be called from inside `next` or with the app's own locks held. */
    void (*waker_wake)(void *waker);

    /* Release a waker, exactly once, from any thread, before or after the request ended. */
    void (*waker_free)(void *waker);

    /* ABI 1.2 — present when WS_HAS_FIELD(host, ws_host, websocket_close). Later minors append
     * more fields after it: test each field you use with WS_HAS_FIELD. */

    /* Answer the request with 101 and take the connection as a byte stream ("Upgraded
     * connections" above). Answered where start_response is (during call and next), before any
     * response byte was sent and after the request body was read to its end. `headers` must hold
     * `Upgrade` naming one protocol the client offered in its own `Upgrade`; the server adds
     * `Connection: Upgrade` and `Date`; other hop-by-hop fields are refused as in start_response.
     * `flags` is 0 (reserved). On WS_OK *stream is the app's until stream_close. WS_ERR_STATE:
     * not an upgrade request (HTTP/1.1 with `Upgrade` and `Connection: upgrade`), a head already
     * sent, body unread, or from `close`; WS_ERR_INVALID: a bad header or handler. */
    int32_t (*upgrade)(void *io, const ws_pair *headers, size_t n_headers, uint32_t flags,
                       const ws_conn_handler *handler, void **stream);
    /* Any thread, never waits. WS_OK with *n_read > 0: data; WS_OK with *n_read == 0: the client
     * closed its side (and forever after); WS_PENDING: nothing now, WS_EV_READABLE follows. */
    int32_t (*stream_read)(void *stream, uint8_t *buf, size_t cap, size_t *n_read);
    /* Any thread, never waits. WS_OK with *n_written > 0 (may be fewer than len); WS_PENDING: no
     * room now (nothing taken), WS_EV_WRITABLE follows; WS_ERR_CLIENT_GONE once closed. */
    int32_t (*stream_write)(void *stream, const uint8_t *buf, size_t len, size_t *n_written);
    /* Any thread, exactly once: what was accepted is still sent (up to --io-timeout), then the
     * connection closes; the handle is invalid on return; release(ctx) follows. */
    void (*stream_close)(void *stream);

    /* Accept a WebSocket (the request has WS_REQ_WEBSOCKET). The server writes the 101 with
     * Sec-WebSocket-Accept; `protocol` (may be empty) must be one the client offered in
     * Sec-WebSocket-Protocol; `headers` are extra fields (Set-Cookie, ...). No extension is
     * negotiated. `flags` is 0 (reserved). On a request that is not a valid handshake it returns
     * WS_ERR_INVALID and the server answers 400 (426 with Sec-WebSocket-Version: 13 for another
     * version), whatever the app answers next, as `read` failures do. WS_ERR_STATE as upgrade. */
    int32_t (*websocket_accept)(void *io, ws_bytes protocol, const ws_pair *headers,
                                size_t n_headers, uint32_t flags, const ws_conn_handler *handler,
                                void **websocket);
    /* Any thread, never waits. 1: *message holds the next text or binary message (pings and
     * pongs are the server's); WS_PENDING: none complete now, WS_EV_READABLE follows; 0: closed —
     * *message is WS_MSG_CLOSE with the client's code and reason (1006 if none came). */
    int32_t (*websocket_recv)(void *websocket, ws_message *message);
    /* Any thread, never waits. WS_OK: queued (the server sends it in order); WS_PENDING: not
     * taken, the connection's earlier output still waits for the client — send it again after
     * WS_EV_WRITABLE; WS_ERR_TOO_LARGE: over --ws-max-message; WS_ERR_INVALID: text not UTF-8
     * or an unknown kind; WS_ERR_CLIENT_GONE: closed. */
    int32_t (*websocket_send)(void *websocket, uint32_t kind, const uint8_t *data, size_t len);
    /* Any thread, exactly once: starts the closing handshake with `code` (1000 normal; 0 = no
     * code) and `reason` (at most 123 bytes, UTF-8) unless it is already closed; the server
     * finishes it alone (waiting up to --io-timeout for the client's reply). The handle is
     * invalid on return; release(ctx) follows. */
    void (*websocket_close)(void *websocket, uint16_t code, ws_bytes reason);

    /* ABI 1.2, appended after websocket_close — present when WS_HAS_FIELD(host, ws_host,
     * send_file). The response body is bytes
     * [offset, offset + length) of the open regular file `fd` (length WS_LENGTH_UNKNOWN: to the
     * end of the file), sent by the server with sendfile(2) as the client reads: no byte passes
     * through the app, and no thread waits for a slow client. Call it during `call` or `next`,
     * after a successful start_response and before any body byte; it ends the response (`next`
     * then returns 0; later chunks and writes are refused). The server duplicates `fd` during
     * the call: the app still owns its descriptor and may close it as soon as this returns; the
     * server reads at explicit offsets, so the descriptor's position is neither used nor moved.
     * The Content-Length is the range's. For a 200: If-None-Match / If-Modified-Since matching
     * the app's ETag / Last-Modified (or, with WS_FILE_VALIDATORS, the file's, which are then
     * added) get 304; with WS_FILE_RANGES one `Range` within the app's range gets 206 (positions
     * relative to it), past its end 416; a HEAD gets the head. Any other status is sent as set.
     * Returns WS_OK; WS_ERR_STATE out of order, or where the server cannot send a file on this
     * request (an HTTP/2 stream for now: send chunks instead); WS_ERR_INVALID for a descriptor that is not an
     * open regular file, a range outside it or unknown flags (nothing was sent: the app may
     * answer with chunks instead); WS_ERR_CLIENT_GONE. */
    int32_t (*send_file)(void *io, int32_t fd, uint64_t offset, uint64_t length, uint32_t flags);

    /* ABI 1.3 — present when WS_HAS_FIELD(host, ws_host, set_trailers) ("Trailers" above). */

    /* The request's trailer fields (an HTTP/1.1 chunked body's trailer section, HTTP/2's
     * trailing HEADERS), once the body was read to its end (`read` or `try_read` answered 0).
     * Answered where `read` is. WS_OK: *fields points to *n_fields pairs (0 when the client sent
     * none, or the body was not chunked), server-owned and valid until `close` returns; names as
     * the client spelled them (HTTP/2: lowercase). WS_PENDING: the body has not reached its end:
     * read on, then ask again. WS_ERR_STATE from `close` or another thread. */
    int32_t (*request_trailers)(void *io, const ws_pair **fields, size_t *n_fields);
    /* The response's trailer fields, sent after its body: checked and copied as start_response's
     * headers are (tokens, no CR/LF/NUL, no hop-by-hop field), and also refused
     * (WS_ERR_INVALID) for the fields a trailer must not carry (RFC 9110 §6.5.1: Content-Length,
     * Content-Type, Content-Encoding, Content-Range, Host, Trailer, Authorization, Set-Cookie...).
     * Replaces what an earlier call set. Answered where start_response is, until the body ended
     * (`next` returned 0); WS_ERR_STATE after. `flags` is 0 (reserved). */
    int32_t (*set_trailers)(void *io, const ws_pair *fields, size_t n_fields, uint32_t flags);

    /* ABI 1.3, appended after set_trailers — present when WS_HAS_FIELD(host, ws_host,
     * waker_wake_here). waker_wake, with a promise from the caller: it is a serving thread in
     * `call` or `next` of another request, which returns soon and needs no waiting after that
     * (its later `next`s give chunks at once). The server may then run the woken request's
     * `next` (and send what it gives) on this thread once it has finished the work at hand,
     * instead of waking another thread for it: an app that did several requests' work in one go
     * (a Python bridge holding the GIL) sends their responses without a context switch each.
     * From any other thread, or a server that does not do this, it is waker_wake. A caller that
     * breaks the promise delays the woken request, never loses it. */
    void (*waker_wake_here)(void *waker);

    /* ABI 1.3, appended after waker_wake_here — present when WS_HAS_FIELD(host, ws_host,
     * request_parts). */

    /* The request's parsed head ("Request parts" above). Answered where `read` is. WS_OK:
     * *parts is server-owned and valid until `close` returns. WS_ERR_STATE: the descriptor does
     * not set WS_APP_REQUEST_PARTS (read the environ), or from `close` or another thread. */
    int32_t (*request_parts)(void *io, const ws_request_parts **parts);
} ws_host;

/* One request, valid from the start of `call` until the body's `close` returns. */
typedef struct ws_request {
    uint32_t size;  /* sizeof(ws_request) as the server knows it */
    uint32_t flags; /* WS_REQ_* */
    const ws_pair *environ;
    size_t environ_len;
    void *io;
    const ws_host *host;
    const void *log_ctx;
} ws_request;

/*
 * The response body, filled by `call`. The server pulls chunks with `next` and calls `close`
 * exactly once after `call` returned WS_OK: after the last chunk, on client disconnect and on
 * error alike. A `next` or `close` that is NULL means "no chunks" / "nothing to release".
 */
typedef struct ws_body {
    uint32_t size; /* set by the server to sizeof(ws_body) before `call` */
    uint32_t reserved;
    void *ctx;
    /* 1: *chunk holds the next chunk (valid until the next `next` or `close`); 0: end of body;
     * WS_PENDING (ABI 1.1): no chunk yet, see "Deferred responses"; negative: error (the server
     * closes the connection, or answers 500 if nothing was sent). */
    int32_t (*next)(void *ctx, ws_bytes *chunk);
    void (*close)(void *ctx);
    /* The exact body length if known (it becomes Content-Length), else WS_LENGTH_UNKNOWN. */
    uint64_t length_hint;
} ws_body;

/* What `init` receives. */
typedef struct ws_init {
    uint32_t size;
    uint32_t reserved;
    const ws_host *host;
    const void *log_ctx;
    /* On failure, write a message of at most error_cap bytes here and set *error_len. */
    uint8_t *error_buf;
    size_t error_cap;
    size_t *error_len;

    /* ABI 1.1: the words after LIB:SYMBOL on the command line (`webserver LIB:SYMBOL [ARGS]...`),
     * valid during `init` only (copy what you keep). Absent when `size` does not cover them:
     * WS_HAS_FIELD(init, ws_init, n_args). */
    const ws_bytes *args;
    size_t n_args;
} ws_init;

/* The descriptor: the exported symbol named on the command line. */
typedef struct ws_app {
    /* Fixed header: never changes in any version. */
    uint32_t magic;     /* WS_APP_MAGIC */
    uint16_t abi_major; /* WS_ABI_MAJOR the app was built against */
    uint16_t abi_minor; /* WS_ABI_MINOR the app was built against */
    uint32_t size;      /* sizeof(ws_app) as the app knows it */
    uint32_t flags;     /* WS_APP_* */

    const char *name;    /* NUL-terminated, static */
    const char *version; /* NUL-terminated, static */

    /* Optional. Returns WS_OK and sets *state (may be NULL), or non-zero with an error message. */
    int32_t (*init)(const ws_init *init, void **state);
    /* Required. One request. Returns WS_OK with *body filled (the server then owes one `close`),
     * or non-zero: the server answers 500 (if no byte was sent) and ignores *body. */
    int32_t (*call)(void *state, const ws_request *request, ws_body *body);
    /* Optional. Releases the state after the last request. */
    void (*shutdown)(void *state);
} ws_app;

/* Fills the fixed header of a ws_app in a static initializer:
 *   const ws_app app = { WS_APP_HEADER(0), "hello", "1.0", NULL, hello_call, NULL }; */
#define WS_APP_HEADER(flags) WS_APP_MAGIC, WS_ABI_MAJOR, WS_ABI_MINOR, (uint32_t)sizeof(ws_app), (flags)

/* True if a struct that starts with `size` (ws_host, ws_init) has `field`. */
#define WS_HAS_FIELD(ptr, type, field) \
    ((ptr)->size >= offsetof(type, field) + sizeof(((type *)0)->field))

/* Look a variable up in a request's environ (first match); returns 1 and sets *value if found. */
static inline int ws_getenv(const ws_request *req, const char *name, ws_bytes *value) {
    size_t name_len = 0;
    while (name[name_len] != '\0') name_len++;
    for (size_t i = 0; i < req->environ_len; i++) {
        const ws_pair *p = &req->environ[i];
        if (p->name.len != name_len) continue;
        size_t j = 0;
        while (j < name_len && p->name.ptr[j] == (uint8_t)name[j]) j++;
        if (j == name_len) {
            *value = p->value;
            return 1;
        }
    }
    return 0;
}

#ifdef __cplusplus
}
#endif

#endif /* WEBSERVER_APP_H */
