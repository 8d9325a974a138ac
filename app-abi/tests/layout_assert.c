/*
 * The LP64 layout of ABI 1.2 pinned from the C side, as raw.rs pins it from the Rust side.
 * Compiled with `-fsyntax-only` by app-abi/tests/layout.rs: a header change that moves a field
 * fails here even if the Rust mirror moved the same way.
 */
#include <stdalign.h>
#include "webserver_app.h"

#if UINTPTR_MAX == 0xffffffffffffffffu && SIZE_MAX == 0xffffffffffffffffu

#define SIZE(t, n, a) _Static_assert(sizeof(t) == (n) && alignof(t) == (a), #t " size/align")
#define OFF(t, f, n) _Static_assert(offsetof(t, f) == (n), #t "." #f " offset")

SIZE(ws_bytes, 16, 8);
OFF(ws_bytes, ptr, 0);
OFF(ws_bytes, len, 8);

SIZE(ws_pair, 32, 8);
OFF(ws_pair, name, 0);
OFF(ws_pair, value, 16);

SIZE(ws_host, 176, 8);
OFF(ws_host, size, 0);
OFF(ws_host, reserved, 4);
OFF(ws_host, read, 8);
OFF(ws_host, start_response, 16);
OFF(ws_host, write, 24);
OFF(ws_host, log, 32);
OFF(ws_host, try_read, 40); /* 1.1 appends after the 1.0 size (40) */
OFF(ws_host, waker_new, 48);
OFF(ws_host, waker_wake, 56);
OFF(ws_host, waker_free, 64);
OFF(ws_host, upgrade, 72); /* 1.2 appends after the 1.1 size (72) */
OFF(ws_host, stream_read, 80);
OFF(ws_host, stream_write, 88);
OFF(ws_host, stream_close, 96);
OFF(ws_host, websocket_accept, 104);
OFF(ws_host, websocket_recv, 112);
OFF(ws_host, websocket_send, 120);
OFF(ws_host, websocket_close, 128);
OFF(ws_host, send_file, 136); /* 1.2, appended after websocket_close */
OFF(ws_host, request_trailers, 144); /* 1.3 appends after the 1.2 size (144) */
OFF(ws_host, set_trailers, 152);
OFF(ws_host, waker_wake_here, 160);
OFF(ws_host, request_parts, 168); /* 1.3, appended after waker_wake_here */

SIZE(ws_request_parts, 88, 8);
OFF(ws_request_parts, size, 0);
OFF(ws_request_parts, version, 4);
OFF(ws_request_parts, reserved, 6);
OFF(ws_request_parts, method, 8);
OFF(ws_request_parts, scheme, 24);
OFF(ws_request_parts, authority, 40);
OFF(ws_request_parts, target, 56);
OFF(ws_request_parts, fields, 72);
OFF(ws_request_parts, n_fields, 80);

SIZE(ws_conn_handler, 32, 8);
OFF(ws_conn_handler, size, 0);
OFF(ws_conn_handler, reserved, 4);
OFF(ws_conn_handler, ctx, 8);
OFF(ws_conn_handler, on_event, 16);
OFF(ws_conn_handler, release, 24);

SIZE(ws_message, 24, 8);
OFF(ws_message, kind, 0);
OFF(ws_message, close_code, 4);
OFF(ws_message, reserved, 6);
OFF(ws_message, data, 8);

SIZE(ws_request, 48, 8);
OFF(ws_request, size, 0);
OFF(ws_request, flags, 4);
OFF(ws_request, environ, 8);
OFF(ws_request, environ_len, 16);
OFF(ws_request, io, 24);
OFF(ws_request, host, 32);
OFF(ws_request, log_ctx, 40);

SIZE(ws_body, 40, 8);
OFF(ws_body, size, 0);
OFF(ws_body, reserved, 4);
OFF(ws_body, ctx, 8);
OFF(ws_body, next, 16);
OFF(ws_body, close, 24);
OFF(ws_body, length_hint, 32);

SIZE(ws_init, 64, 8);
OFF(ws_init, size, 0);
OFF(ws_init, reserved, 4);
OFF(ws_init, host, 8);
OFF(ws_init, log_ctx, 16);
OFF(ws_init, error_buf, 24);
OFF(ws_init, error_cap, 32);
OFF(ws_init, error_len, 40);
OFF(ws_init, args, 48); /* 1.1 appends after the 1.0 size (48) */
OFF(ws_init, n_args, 56);

SIZE(ws_app, 56, 8);
OFF(ws_app, magic, 0);
OFF(ws_app, abi_major, 4);
OFF(ws_app, abi_minor, 6);
OFF(ws_app, size, 8);
OFF(ws_app, flags, 12);
OFF(ws_app, name, 16);
OFF(ws_app, version, 24);
OFF(ws_app, init, 32);
OFF(ws_app, call, 40);
OFF(ws_app, shutdown, 48);

_Static_assert(WS_APP_MAGIC == 0x50415357u, "magic is \"WSAP\" little-endian");
_Static_assert(WS_ABI_MAJOR == 1 && WS_ABI_MINOR == 3, "ABI 1.3");
_Static_assert(WS_PENDING == 2, "pending is positive, not an error");
_Static_assert(WS_LENGTH_UNKNOWN == UINT64_MAX, "length unknown");

#endif
