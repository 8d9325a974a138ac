/*
 * c-hello: a webserver app written in C against app-abi/include/webserver_app.h alone.
 *
 *   cc -shared -fPIC -O2 -Wall -Werror -I app-abi/include -o libc_hello.so sample-apps/c-hello/hello.c
 *   webserver ./libc_hello.so:app
 *
 * Every request gets `200 text/plain` "Hello from C! path=<PATH_INFO>\n". The body is produced
 * by `next`/`close` from a per-request context allocated in `call` and freed in `close` (the
 * app allocates it, so the app frees it: nothing crosses the boundary to be freed on the other side).
 */
#include <stdlib.h>
#include <string.h>

#include "webserver_app.h"

typedef struct hello_body {
    char *text;  /* malloc'd by call, freed by close */
    size_t len;
    int sent;    /* 1 once `next` returned the single chunk */
} hello_body;

static const char GREETING[] = "Hello from C! path=";

static void log_str(const ws_host *host, const void *log_ctx, uint32_t level, const char *msg) {
    if (host != NULL && host->log != NULL) host->log(log_ctx, level, (const uint8_t *)msg, strlen(msg));
}

static int32_t hello_init(const ws_init *init, void **state) {
    log_str(init->host, init->log_ctx, WS_LOG_INFO, "c-hello initialised");
    *state = NULL;
    return WS_OK;
}

static int32_t hello_next(void *ctx, ws_bytes *chunk) {
    hello_body *b = (hello_body *)ctx;
    if (b->sent) return 0;
    b->sent = 1;
    chunk->ptr = (const uint8_t *)b->text;
    chunk->len = b->len;
    return 1;
}

static void hello_close(void *ctx) {
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

    /* No Content-Length header: length_hint below is exact, and the server frames the body. */
    static const char content_type[] = "Content-Type", text_plain[] = "text/plain; charset=utf-8";
    ws_pair headers[1] = {
        {{(const uint8_t *)content_type, sizeof content_type - 1},
         {(const uint8_t *)text_plain, sizeof text_plain - 1}},
    };
    ws_bytes reason = {NULL, 0};
    int32_t rc = req->host->start_response(req->io, 200, reason, headers, 1, 0);
    if (rc != WS_OK) {
        hello_close(b);
        return rc;
    }

    body->ctx = b;
    body->next = hello_next;
    body->close = hello_close;
    body->length_hint = b->len;
    return WS_OK;
}

const ws_app app = {WS_APP_HEADER(0), "c-hello", "1.0", hello_init, hello_call, NULL};
