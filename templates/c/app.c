/*
 * {{name}}: a webserver app in C (C99), built against webserver_app.h alone.
 *
 *   make && webserver check ./lib{{name}}.so:app && webserver ./lib{{name}}.so:app
 *
 * Every request gets `200 text/plain` "Hello from {{name}}! path=<PATH_INFO>\n". The body's
 * context is allocated in `call` and freed in `close`: the side that allocates frees.
 */
#include <stdlib.h>
#include <string.h>

#include "webserver_app.h"

typedef struct hello_body {
    char *text;
    size_t len;
    int sent; /* 1 once `next` returned the one chunk */
} hello_body;

static const char GREETING[] = "Hello from {{name}}! path=";

static int32_t hello_init(const ws_init *init, void **state) {
    static const char msg[] = "{{name}} initialised";
    if (init->host != NULL && init->host->log != NULL)
        init->host->log(init->log_ctx, WS_LOG_INFO, (const uint8_t *)msg, sizeof msg - 1);
    *state = NULL;
    return WS_OK;
}

static int32_t hello_next(void *ctx, ws_bytes *chunk) {
    hello_body *b = (hello_body *)ctx;
    if (b->sent) return 0; /* end of body */
    b->sent = 1;
    chunk->ptr = (const uint8_t *)b->text;
    chunk->len = b->len;
    return 1; /* one chunk */
}

static void hello_close(void *ctx) { /* called once whenever call() returned WS_OK */
    hello_body *b = (hello_body *)ctx;
    free(b->text);
    free(b);
}

static int32_t hello_call(void *state, const ws_request *req, ws_body *body) {
    (void)state;
    ws_bytes path = {NULL, 0};
    ws_getenv(req, "PATH_INFO", &path);

    hello_body *b = (hello_body *)calloc(1, sizeof *b);
    if (b == NULL) return WS_ERR_APP;
    b->len = sizeof GREETING - 1 + path.len + 1;
    b->text = (char *)malloc(b->len);
    if (b->text == NULL) {
        free(b);
        return WS_ERR_APP;
    }
    memcpy(b->text, GREETING, sizeof GREETING - 1);
    if (path.len > 0) memcpy(b->text + sizeof GREETING - 1, path.ptr, path.len);
    b->text[b->len - 1] = '\n';

    ws_pair headers[1] = {
        {{(const uint8_t *)"Content-Type", 12}, {(const uint8_t *)"text/plain; charset=utf-8", 25}},
    };
    ws_bytes no_reason = {NULL, 0}; /* the server's standard phrase */
    int32_t rc = req->host->start_response(req->io, 200, no_reason, headers, 1, 0);
    if (rc != WS_OK) {
        hello_close(b);
        return rc;
    }
    body->ctx = b;
    body->next = hello_next;
    body->close = hello_close;
    body->length_hint = b->len; /* exact: becomes Content-Length */
    return WS_OK;
}

/* The descriptor `webserver ./lib{{name}}.so:app` names: data, not a function. In C++ write
 * `extern "C" const ws_app app = ...` (a C++ const global is otherwise internal and mangled). */
const ws_app app = {WS_APP_HEADER(0), "{{name}}", "0.1.0", hello_init, hello_call, NULL};
