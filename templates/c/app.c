/*
 * {{name}}: a webserver app in C (C99 + POSIX threads), built against webserver_app.h alone.
 *
 *   make && webserver check ./lib{{name}}.so:app && webserver ./lib{{name}}.so:app
 *
 * Routes:
 *   /later?ms=N  "Hello later from {{name}}, after N ms\n", answered from one of the app's own
 *                worker threads after N ms of stand-in slow work (default 100, at most 10000).
 *                No server thread waits meanwhile: `next` answers WS_PENDING until the worker
 *                calls waker_wake (the ABI 1.1 deferred pattern; replace the wait with a query or
 *                a call to another service).
 *   /ws          a WebSocket echo (ABI 1.2): the server speaks the protocol (handshake, frames,
 *                pings, the closing handshake) and the app gets whole messages, called back on a
 *                serving thread when one arrives or the client can take more. No thread waits.
 *                A plain request gets 426.
 *   anything else  200 text/plain "Hello from {{name}}! path=<PATH_INFO>\n", at once.
 *
 * Ownership:
 *  - An immediate body is allocated in `call` and freed in `close`: the side that allocates frees.
 *  - A /later job is used by two sides that end independently: the server (through `next` and
 *    `close`) and the worker thread doing the work. A client may leave, or --timeout strike,
 *    while the worker still works (then `close` comes first); or the worker may finish first.
 *    So the job holds a reference count, 2 when `call` queues it: `close` drops the server's
 *    reference, the worker drops its own when done, and whichever drops the last one frees the
 *    job and its waker. Neither side frees what the other still uses, and neither needs to know
 *    which one is last. (waker_wake after `close` is safe and does nothing; the waker itself
 *    must stay alive until waker_free, which is why it is freed with the job.)
 *  - A WebSocket's `struct echo` is allocated in `ws_call` and freed by the server's `release`
 *    callback, which comes once after the app's websocket_close, when no `echo_event` runs.
 *  - The worker threads run this library's code, so they must not outlive it: `shutdown` (which
 *    the server calls after the last `close`, before it unloads the library) stops and joins them.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, pthread_condattr_setclock under -std=c99 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "webserver_app.h"

#define WORKER_THREADS 4
#define DEFAULT_MS 100
#define MAX_MS 10000

/* ---- The immediate route ------------------------------------------------------------------ */

typedef struct hello_body {
    char *text;
    size_t len;
    int sent; /* 1 once `next` returned the one chunk */
} hello_body;

static const char GREETING[] = "Hello from {{name}}! path=";

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

static int32_t hello_call(const ws_request *req, ws_body *body) {
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

/* ---- The deferred route: a job, shared by the server and a worker thread -------------------- */

typedef struct job {
    pthread_mutex_t lock;   /* guards refs, done, cancelled */
    pthread_cond_t changed; /* signalled by `close` on cancel, so the worker stops early */
    int refs;               /* 2 while queued: the server's (until close) and the worker's */
    int done;               /* the worker wrote `text`: `next` may answer */
    int cancelled;          /* `close` came first: the worker may give up */
    struct job *queued;     /* the next job on the queue (guarded by the app's lock) */
    long ms;
    void *waker;            /* the request's: the worker wakes it once `done` is set */
    const ws_host *host;
    void *io;               /* valid until `close` returns; used only by `next` */
    int answered;           /* start_response done (only `next` touches it) */
    int sent;               /* the chunk was returned (only `next` touches it) */
    char text[96];
    size_t len;
} job;

typedef struct app_state {
    const ws_host *host;
    pthread_mutex_t lock; /* guards the queue and stopping */
    pthread_cond_t work;  /* a job was queued, or stopping was set */
    job *head, *tail;
    int stopping;
    pthread_t workers[WORKER_THREADS];
    int n_workers;
} app_state;

/* Drops one reference; the last one frees. Takes the lock so that the decrement and the test for
 * zero are one step: two sides releasing at once cannot both see 1. */
static void job_release(job *j) {
    pthread_mutex_lock(&j->lock);
    int last = --j->refs == 0;
    pthread_mutex_unlock(&j->lock);
    if (!last) return;
    j->host->waker_free(j->waker); /* exactly once, from whichever thread released last */
    pthread_cond_destroy(&j->changed);
    pthread_mutex_destroy(&j->lock);
    free(j);
}

/* The stand-in for slow work: waits j->ms milliseconds, or less if `close` cancelled the job. */
static void slow_work(job *j) {
    struct timespec due;
    clock_gettime(CLOCK_MONOTONIC, &due);
    due.tv_sec += j->ms / 1000;
    due.tv_nsec += (j->ms % 1000) * 1000000L;
    if (due.tv_nsec >= 1000000000L) {
        due.tv_sec += 1;
        due.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&j->lock);
    while (!j->cancelled && pthread_cond_timedwait(&j->changed, &j->lock, &due) == 0) {
    }
    pthread_mutex_unlock(&j->lock);
}

static void *worker_main(void *arg) {
    app_state *app = (app_state *)arg;
    for (;;) {
        pthread_mutex_lock(&app->lock);
        while (app->head == NULL && !app->stopping) pthread_cond_wait(&app->work, &app->lock);
        job *j = app->head;
        if (j == NULL) { /* stopping, and nothing left */
            pthread_mutex_unlock(&app->lock);
            return NULL;
        }
        app->head = j->queued;
        if (app->head == NULL) app->tail = NULL;
        pthread_mutex_unlock(&app->lock);

        slow_work(j);
        /* The result is written before `done` is set under the lock, and `next` reads it only
         * after seeing `done` under the same lock. */
        j->len = (size_t)snprintf(j->text, sizeof j->text,
                                  "Hello later from {{name}}, after %ld ms\n", j->ms);
        pthread_mutex_lock(&j->lock);
        j->done = 1;
        pthread_mutex_unlock(&j->lock);
        app->host->waker_wake(j->waker); /* any thread may wake; after `close` it does nothing */
        job_release(j);                  /* the worker's reference: it touches j no more */
    }
}

static int32_t later_next(void *ctx, ws_bytes *chunk) {
    job *j = (job *)ctx;
    pthread_mutex_lock(&j->lock);
    int done = j->done;
    pthread_mutex_unlock(&j->lock);
    if (!done) return WS_PENDING; /* the server parks the request until waker_wake */
    if (j->sent) return 0;
    if (!j->answered) { /* start_response from a later `next`: allowed */
        ws_pair headers[1] = {
            {{(const uint8_t *)"Content-Type", 12},
             {(const uint8_t *)"text/plain; charset=utf-8", 25}},
        };
        ws_bytes no_reason = {NULL, 0};
        int32_t rc = j->host->start_response(j->io, 200, no_reason, headers, 1, 0);
        if (rc != WS_OK) return rc;
        j->answered = 1;
    }
    j->sent = 1;
    chunk->ptr = (const uint8_t *)j->text;
    chunk->len = j->len;
    return 1;
}

/* The server is done with the request (answered, client gone, --timeout, stop): cancel the work
 * if it still runs, and drop the server's reference. */
static void later_close(void *ctx) {
    job *j = (job *)ctx;
    pthread_mutex_lock(&j->lock);
    j->cancelled = 1;
    pthread_cond_signal(&j->changed);
    pthread_mutex_unlock(&j->lock);
    job_release(j);
}

static long query_ms(const ws_request *req) {
    ws_bytes query;
    if (!ws_getenv(req, "QUERY_STRING", &query) || query.len < 4 || query.len > 16 ||
        memcmp(query.ptr, "ms=", 3) != 0)
        return DEFAULT_MS;
    char digits[16];
    memcpy(digits, query.ptr + 3, query.len - 3);
    digits[query.len - 3] = '\0';
    long ms = strtol(digits, NULL, 10);
    return ms < 0 ? 0 : ms > MAX_MS ? MAX_MS : ms;
}

static int32_t later_call(app_state *app, const ws_request *req, ws_body *body) {
    job *j = (job *)calloc(1, sizeof *j);
    if (j == NULL) return WS_ERR_APP;
    j->waker = req->host->waker_new(req->io); /* only during `call` and `next` */
    if (j->waker == NULL) {
        free(j);
        return WS_ERR_APP;
    }
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&j->changed, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&j->lock, NULL);
    j->refs = 2; /* the server's, dropped in later_close; the worker's, dropped when done */
    j->ms = query_ms(req);
    j->host = req->host;
    j->io = req->io;

    pthread_mutex_lock(&app->lock);
    if (app->tail != NULL) app->tail->queued = j; else app->head = j;
    app->tail = j;
    pthread_cond_signal(&app->work);
    pthread_mutex_unlock(&app->lock);

    /* `call` never pends: it returns at once, with a body whose `next` pends. */
    body->ctx = j;
    body->next = later_next;
    body->close = later_close;
    body->length_hint = WS_LENGTH_UNKNOWN;
    return WS_OK;
}

/* ---- The WebSocket route ------------------------------------------------------------------- */

typedef struct echo {
    const ws_host *host;
    void *ws;         /* the handle, until websocket_close */
    ws_message held;  /* a message the client cannot take yet (valid until the next recv) */
    int holding;
} echo;

/* Called on a serving thread when a recv or send that answered WS_PENDING may now progress, or
 * the connection ended. Whatever woke it, it does what it can and returns. */
static void echo_event(void *ctx, uint32_t events) {
    echo *e = (echo *)ctx;
    (void)events;
    for (;;) {
        if (!e->holding) {
            int32_t rc = e->host->websocket_recv(e->ws, &e->held);
            if (rc == WS_PENDING) return; /* called again when a message arrives */
            if (rc != 1) {                /* closed: release the handle (release() follows) */
                ws_bytes no_reason = {NULL, 0};
                e->host->websocket_close(e->ws, 1000, no_reason);
                return;
            }
            e->holding = 1;
        }
        int32_t rc =
            e->host->websocket_send(e->ws, e->held.kind, e->held.data.ptr, e->held.data.len);
        if (rc == WS_PENDING) return; /* called again when the client reads */
        e->holding = 0;
    }
}

static int32_t ws_call(const ws_request *req, ws_body *body) {
    (void)body; /* empty: the request ends with the 101 */
    if (!(req->flags & WS_REQ_WEBSOCKET)) { /* not a handshake, or a server before ABI 1.2 */
        ws_pair headers[1] = {
            {{(const uint8_t *)"Sec-WebSocket-Version", 21}, {(const uint8_t *)"13", 2}},
        };
        ws_bytes no_reason = {NULL, 0};
        return req->host->start_response(req->io, 426, no_reason, headers, 1, 0);
    }
    echo *e = (echo *)calloc(1, sizeof *e);
    if (e == NULL) return WS_ERR_APP;
    e->host = req->host;
    ws_conn_handler handler = {sizeof handler, 0, e, echo_event, free};
    ws_bytes no_protocol = {NULL, 0};
    int32_t rc = req->host->websocket_accept(req->io, no_protocol, NULL, 0, 0, &handler, &e->ws);
    if (rc != WS_OK) free(e); /* not accepted: no release() will come */
    return rc;
}

/* ---- The app ------------------------------------------------------------------------------- */

static void fail(const ws_init *init, const char *msg) {
    size_t len = strlen(msg);
    if (len > init->error_cap) len = init->error_cap;
    memcpy(init->error_buf, msg, len);
    *init->error_len = len;
}

static void stop_workers(app_state *app) {
    pthread_mutex_lock(&app->lock);
    app->stopping = 1;
    pthread_cond_broadcast(&app->work);
    pthread_mutex_unlock(&app->lock);
    for (int i = 0; i < app->n_workers; i++) pthread_join(app->workers[i], NULL);
    pthread_cond_destroy(&app->work);
    pthread_mutex_destroy(&app->lock);
    free(app);
}

static int32_t app_init(const ws_init *init, void **state) {
    /* Wakers are ABI 1.1: a 1.0 server's ws_host ends at `log`. */
    if (!WS_HAS_FIELD(init->host, ws_host, waker_free)) {
        fail(init, "{{name}} needs a webserver speaking ABI 1.1 (wakers); upgrade webserver");
        return -1;
    }
    app_state *app = (app_state *)calloc(1, sizeof *app);
    if (app == NULL) {
        fail(init, "out of memory");
        return -1;
    }
    app->host = init->host;
    pthread_mutex_init(&app->lock, NULL);
    pthread_cond_init(&app->work, NULL);
    for (; app->n_workers < WORKER_THREADS; app->n_workers++) {
        if (pthread_create(&app->workers[app->n_workers], NULL, worker_main, app) != 0) {
            stop_workers(app);
            fail(init, "cannot start the worker threads");
            return -1;
        }
    }
    static const char msg[] = "{{name}} initialised";
    if (init->host->log != NULL)
        init->host->log(init->log_ctx, WS_LOG_INFO, (const uint8_t *)msg, sizeof msg - 1);
    *state = app;
    return WS_OK;
}

/* After the last `close`: every job still queued or in work was cancelled, so the workers finish
 * quickly, drop their references (the last ones) and return. */
static void app_shutdown(void *state) { stop_workers((app_state *)state); }

static int path_is(const ws_request *req, const char *want) {
    ws_bytes path;
    return ws_getenv(req, "PATH_INFO", &path) && path.len == strlen(want) &&
           memcmp(path.ptr, want, path.len) == 0;
}

static int32_t app_call(void *state, const ws_request *req, ws_body *body) {
    if (path_is(req, "/later")) return later_call((app_state *)state, req, body);
    if (path_is(req, "/ws")) return ws_call(req, body);
    return hello_call(req, body);
}

/* The descriptor `webserver ./lib{{name}}.so:app` names: data, not a function. In C++ write
 * `extern "C" const ws_app app = ...` (a C++ const global is otherwise internal and mangled). */
const ws_app app = {WS_APP_HEADER(0), "{{name}}", "0.1.0", app_init, app_call,
                    app_shutdown};
