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
    CONST(WS_REQ_MULTITHREAD);
    CONST(WS_REQ_MULTIPROCESS);
    CONST(WS_REQ_RUN_ONCE);
    CONST(WS_RESPONSE_REPLACE);
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
