/*
 * Prints the layout of every ABI struct and the value of every constant as the C compiler sees
 * them, one `key value` line each. app-abi/tests/layout.rs compiles and runs this file and compares
 * every line with core::mem::{size_of, align_of, offset_of!} of the app_abi::raw mirrors.
 */
#include <stdalign.h>
#include <stdio.h>

#include "webserver_app.h"

#define TYPE(t)                                                                  \
    printf("size %s %zu\n", #t, sizeof(t));                                      \
    printf("align %s %zu\n", #t, alignof(t))
#define FIELD(t, f) printf("offset %s.%s %zu\n", #t, #f, offsetof(t, f))
#define FSIZE(t, f) printf("fieldsize %s.%s %zu\n", #t, #f, sizeof(((t *)0)->f))
#define F(t, f) FIELD(t, f); FSIZE(t, f)
#define CONST(c) printf("const %s %lld\n", #c, (long long)(c))

int main(void) {
    TYPE(ws_bytes);
    F(ws_bytes, ptr);
    F(ws_bytes, len);

    TYPE(ws_pair);
    F(ws_pair, name);
    F(ws_pair, value);

    TYPE(ws_host);
    F(ws_host, size);
    F(ws_host, reserved);
    F(ws_host, read);
    F(ws_host, start_response);
    F(ws_host, write);
    F(ws_host, log);
    F(ws_host, try_read);
    F(ws_host, waker_new);
    F(ws_host, waker_wake);
    F(ws_host, waker_free);
    F(ws_host, upgrade);
    F(ws_host, stream_read);
    F(ws_host, stream_write);
    F(ws_host, stream_close);
    F(ws_host, websocket_accept);
    F(ws_host, websocket_recv);
    F(ws_host, websocket_send);
    F(ws_host, websocket_close);
    F(ws_host, send_file);
    F(ws_host, request_trailers);
    F(ws_host, set_trailers);
    F(ws_host, waker_wake_here);
    F(ws_host, request_parts);

    TYPE(ws_request_parts);
    F(ws_request_parts, size);
    F(ws_request_parts, version);
    F(ws_request_parts, reserved);
    F(ws_request_parts, method);
    F(ws_request_parts, scheme);
    F(ws_request_parts, authority);
    F(ws_request_parts, target);
    F(ws_request_parts, fields);
    F(ws_request_parts, n_fields);

    TYPE(ws_conn_handler);
    F(ws_conn_handler, size);
    F(ws_conn_handler, reserved);
    F(ws_conn_handler, ctx);
    F(ws_conn_handler, on_event);
    F(ws_conn_handler, release);

    TYPE(ws_message);
    F(ws_message, kind);
    F(ws_message, close_code);
    F(ws_message, reserved);
    F(ws_message, data);

    TYPE(ws_request);
    F(ws_request, size);
    F(ws_request, flags);
    F(ws_request, environ);
    F(ws_request, environ_len);
    F(ws_request, io);
    F(ws_request, host);
    F(ws_request, log_ctx);

    TYPE(ws_body);
    F(ws_body, size);
    F(ws_body, reserved);
    F(ws_body, ctx);
    F(ws_body, next);
    F(ws_body, close);
    F(ws_body, length_hint);

    TYPE(ws_init);
    F(ws_init, size);
    F(ws_init, reserved);
    F(ws_init, host);
    F(ws_init, log_ctx);
    F(ws_init, error_buf);
    F(ws_init, error_cap);
    F(ws_init, error_len);
    F(ws_init, args);
    F(ws_init, n_args);

    TYPE(ws_app);
    F(ws_app, magic);
    F(ws_app, abi_major);
    F(ws_app, abi_minor);
    F(ws_app, size);
    F(ws_app, flags);
    F(ws_app, name);
    F(ws_app, version);
    F(ws_app, init);
    F(ws_app, call);
    F(ws_app, shutdown);

    CONST(WS_APP_MAGIC);
    CONST(WS_ABI_MAJOR);
    CONST(WS_ABI_MINOR);
    CONST(WS_APP_SINGLE_THREADED);
    CONST(WS_APP_NONBLOCKING);
    CONST(WS_APP_REQUEST_PARTS);
    CONST(WS_APP_NO_ENVIRON);
    CONST(WS_APP_LENGTH_ENDS_BODY);
    CONST(WS_REQ_MULTITHREAD);
    CONST(WS_REQ_MULTIPROCESS);
    CONST(WS_REQ_RUN_ONCE);
    CONST(WS_REQ_WEBSOCKET);
    CONST(WS_REQ_FIELDS_IN_PARTS);
    CONST(WS_EV_READABLE);
    CONST(WS_EV_WRITABLE);
    CONST(WS_EV_CLOSED);
    CONST(WS_EV_GOING_AWAY);
    CONST(WS_MSG_TEXT);
    CONST(WS_MSG_BINARY);
    CONST(WS_MSG_CLOSE);
    CONST(WS_RESPONSE_REPLACE);
    CONST(WS_RESPONSE_CLOSE);
    /* UINT64_MAX does not fit a long long: print it unsigned. */
    printf("const WS_LENGTH_UNKNOWN %llu\n", (unsigned long long)WS_LENGTH_UNKNOWN);
    CONST(WS_LOG_ERROR);
    CONST(WS_LOG_WARN);
    CONST(WS_LOG_INFO);
    CONST(WS_LOG_DEBUG);
    CONST(WS_LOG_TRACE);
    CONST(WS_OK);
    CONST(WS_ERR_CLIENT_GONE);
    CONST(WS_ERR_TOO_LARGE);
    CONST(WS_ERR_TIMEOUT);
    CONST(WS_ERR_BAD_BODY);
    CONST(WS_ERR_INVALID);
    CONST(WS_ERR_STATE);
    CONST(WS_ERR_APP);
    CONST(WS_PENDING);
    CONST(WS_FILE_RANGES);
    CONST(WS_FILE_VALIDATORS);
    /* The 1.0 sizes, as the offsets where 1.1 starts appending. */
    printf("const WS_HOST_SIZE_V1_0 %zu\n", offsetof(ws_host, try_read));
    printf("const WS_HOST_SIZE_V1_1 %zu\n", offsetof(ws_host, upgrade));
    printf("const WS_HOST_SIZE_V1_2 %zu\n", offsetof(ws_host, request_trailers));
    printf("const WS_INIT_SIZE_V1_0 %zu\n", offsetof(ws_init, args));
    {
        /* WS_HAS_FIELD on a 1.0-size host / init is false for the 1.1 fields, true on 1.1 ones. */
        ws_host old_host = {0};
        ws_init old_init = {0};
        old_host.size = (uint32_t)offsetof(ws_host, try_read);
        old_init.size = (uint32_t)offsetof(ws_init, args);
        printf("const has.v1_0.host.log %d\n", WS_HAS_FIELD(&old_host, ws_host, log));
        printf("const has.v1_0.host.waker_free %d\n", WS_HAS_FIELD(&old_host, ws_host, waker_free));
        printf("const has.v1_0.init.n_args %d\n", WS_HAS_FIELD(&old_init, ws_init, n_args));
        old_host.size = (uint32_t)sizeof(ws_host);
        old_init.size = (uint32_t)sizeof(ws_init);
        printf("const has.v1_1.host.waker_free %d\n", WS_HAS_FIELD(&old_host, ws_host, waker_free));
        printf("const has.v1_1.init.n_args %d\n", WS_HAS_FIELD(&old_init, ws_init, n_args));
        /* A 1.1-size host has the wakers but not the 1.2 calls; a 1.2 one has them. */
        old_host.size = (uint32_t)offsetof(ws_host, upgrade);
        printf("const has.v1_1.host.websocket_close %d\n",
               WS_HAS_FIELD(&old_host, ws_host, websocket_close));
        printf("const has.v1_1.host.waker_free_at_1_1_size %d\n",
               WS_HAS_FIELD(&old_host, ws_host, waker_free));
        old_host.size = (uint32_t)sizeof(ws_host);
        printf("const has.v1_2.host.websocket_close %d\n",
               WS_HAS_FIELD(&old_host, ws_host, websocket_close));
        /* A 1.2-size host has send_file but not the 1.3 trailers. */
        old_host.size = (uint32_t)offsetof(ws_host, request_trailers);
        printf("const has.v1_2.host.set_trailers %d\n",
               WS_HAS_FIELD(&old_host, ws_host, set_trailers));
        printf("const has.v1_2.host.send_file %d\n", WS_HAS_FIELD(&old_host, ws_host, send_file));
        old_host.size = (uint32_t)sizeof(ws_host);
        printf("const has.v1_3.host.set_trailers %d\n",
               WS_HAS_FIELD(&old_host, ws_host, set_trailers));
        printf("const has.v1_3.host.waker_wake_here %d\n",
               WS_HAS_FIELD(&old_host, ws_host, waker_wake_here));
        /* A host that ends at set_trailers (1.3 before waker_wake_here) does not have it. */
        old_host.size = (uint32_t)offsetof(ws_host, waker_wake_here);
        printf("const has.v1_3.host.waker_wake_here_at_trailers_size %d\n",
               WS_HAS_FIELD(&old_host, ws_host, waker_wake_here));
        old_host.size = (uint32_t)sizeof(ws_host);
        printf("const has.v1_3.host.request_parts %d\n",
               WS_HAS_FIELD(&old_host, ws_host, request_parts));
        /* A host of 1.3 that ends at waker_wake_here (before request_parts came) has no parts. */
        old_host.size = (uint32_t)offsetof(ws_host, request_parts);
        printf("const has.v1_3_wake_here_only.host.request_parts %d\n",
               WS_HAS_FIELD(&old_host, ws_host, request_parts));
    }
    /* The macro must fill the header with the 1.0 size. */
    {
        const ws_app probe = {WS_APP_HEADER(WS_APP_SINGLE_THREADED), "probe", "0", NULL, NULL, NULL};
        printf("const header.magic %lld\n", (long long)probe.magic);
        printf("const header.abi_major %lld\n", (long long)probe.abi_major);
        printf("const header.abi_minor %lld\n", (long long)probe.abi_minor);
        printf("const header.size %lld\n", (long long)probe.size);
        printf("const header.flags %lld\n", (long long)probe.flags);
    }
    return 0;
}
